"""Compute plugins (cpu, mem, cuda): capacity, allocation and device stats."""
