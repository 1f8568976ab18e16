"""The gRPC edge of the coordinator: CircuitService and WorkerService."""
