"""Session apps: start a service in a kernel and reach it through the app proxy."""
