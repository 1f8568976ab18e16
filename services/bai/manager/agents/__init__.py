"""The manager's side of agents: registry stream, liveness, event ingestion, images."""
