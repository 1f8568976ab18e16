"""Alembic migrations for the manager database."""

from __future__ import annotations

import asyncio
from pathlib import Path

from alembic import command
from alembic.config import Config

HERE = Path(__file__).resolve().parent


def alembic_config(db_url: str) -> Config:
    cfg = Config()
    cfg.set_main_option("script_location", str(HERE))
    cfg.set_main_option("sqlalchemy.url", db_url)
    return cfg


def upgrade(db_url: str, revision: str = "head") -> None:
    """Bring the schema to `revision`. Safe to run repeatedly."""
    command.upgrade(alembic_config(db_url), revision)


async def upgrade_async(db_url: str, revision: str = "head") -> None:
    # Alembic's env.py runs its own event loop, so keep it off ours.
    await asyncio.to_thread(upgrade, db_url, revision)
