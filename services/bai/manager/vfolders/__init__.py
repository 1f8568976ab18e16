"""Virtual folders: lifecycle, sharing, files and mounts through the storage proxies."""
