"""Envoy data-plane configuration: resources per worker, written as filesystem xDS."""
