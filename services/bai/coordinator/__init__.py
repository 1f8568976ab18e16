"""The app-proxy coordinator: circuits and workers in PostgreSQL, Envoy programmed over xDS."""
