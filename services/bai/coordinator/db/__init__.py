"""Coordinator database: its tables live in their own PostgreSQL schema (default
"coordinator"), with their own Alembic migrations (bai.coordinator.db.migrations)."""

from bai.coordinator.db.tables import SCHEMA, circuits, metadata, spent_app_tokens, workers

__all__ = ["SCHEMA", "circuits", "metadata", "spent_app_tokens", "workers"]
