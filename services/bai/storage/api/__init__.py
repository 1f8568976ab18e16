"""The storage proxy's gRPC edge: StorageService (manager) and FileService (clients)."""
