"""Container registries: rescanning them into the catalogue, and pulls on agents."""
