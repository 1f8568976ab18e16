"""Volumes: where folders live on disk (the `vfs` backend on a local directory)."""
