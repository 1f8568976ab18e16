"""The app-proxy coordinator: circuits and Envoy routes (lands with the app proxy issue)."""
