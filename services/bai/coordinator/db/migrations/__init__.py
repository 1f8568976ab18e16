"""Alembic migrations of the coordinator's schema (its own version table inside it)."""

from __future__ import annotations

import asyncio
from pathlib import Path

from alembic import command
from alembic.config import Config

HERE = Path(__file__).resolve().parent


def alembic_config(db_url: str, schema: str) -> Config:
    cfg = Config()
    cfg.set_main_option("script_location", str(HERE))
    cfg.set_main_option("sqlalchemy.url", db_url)
    cfg.attributes["schema"] = schema
    return cfg


def upgrade(db_url: str, schema: str, revision: str = "head") -> None:
    """Create the schema if needed and bring it to `revision`. Safe to run repeatedly."""
    command.upgrade(alembic_config(db_url, schema), revision)


async def upgrade_async(db_url: str, schema: str, revision: str = "head") -> None:
    # Alembic's env.py runs its own event loop, so keep it off ours.
    await asyncio.to_thread(upgrade, db_url, schema, revision)
