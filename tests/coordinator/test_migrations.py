"""The coordinator's schema: its own PostgreSQL schema and version table, re-runnable."""

from __future__ import annotations

import uuid

from sqlalchemy import text
from sqlalchemy.ext.asyncio import create_async_engine

from bai.coordinator.db.migrations import upgrade_async


async def test_upgrade_creates_its_schema_and_is_idempotent(stack) -> None:  # type: ignore[no-untyped-def]
    schema = f"coord_mig_{uuid.uuid4().hex[:8]}"
    await upgrade_async(stack.pg_dsn, schema)
    await upgrade_async(stack.pg_dsn, schema)
    engine = create_async_engine(stack.pg_dsn)
    try:
        async with engine.connect() as conn:
            tables = (
                await conn.execute(
                    text(
                        "select table_name from information_schema.tables where table_schema = :s"
                    ),
                    {"s": schema},
                )
            ).scalars()
            version = (
                await conn.execute(text(f'select version_num from "{schema}".alembic_version'))
            ).scalar_one()
            expiry = (
                await conn.execute(
                    text(
                        "select data_type, is_nullable from information_schema.columns"
                        " where table_schema = :s and table_name = 'circuits'"
                        " and column_name = 'expires_at'"
                    ),
                    {"s": schema},
                )
            ).one()
    finally:
        await engine.dispose()
    assert set(tables) == {"alembic_version", "workers", "circuits", "spent_app_tokens"}
    assert version == "0002"
    assert tuple(expiry) == ("timestamp with time zone", "YES")
