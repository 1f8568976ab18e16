"""Streaming transfers between clients and volumes: uploads, downloads, archives."""
