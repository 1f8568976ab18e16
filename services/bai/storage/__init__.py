"""The storage proxy: volumes, vfolders and file streaming (lands with the storage issue)."""
