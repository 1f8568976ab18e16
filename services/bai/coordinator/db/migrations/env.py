"""Alembic environment: the coordinator's schema, over the async engine.

Tables and the alembic_version table live in the schema named by the
config attribute "schema"; revisions read it with `op.get_context()`.
"""

from __future__ import annotations

import asyncio

from alembic import context
from sqlalchemy import text
from sqlalchemy.engine import Connection
from sqlalchemy.ext.asyncio import create_async_engine

from bai.coordinator.db.tables import SCHEMA, metadata

config = context.config
schema: str = config.attributes.get("schema", SCHEMA)


def _run(connection: Connection) -> None:
    connection.execute(text(f'CREATE SCHEMA IF NOT EXISTS "{schema}"'))
    connection.commit()
    connection = connection.execution_options(schema_translate_map={SCHEMA: schema})
    context.configure(
        connection=connection,
        target_metadata=metadata,
        version_table_schema=schema,
        include_schemas=True,
        compare_type=True,
    )
    with context.begin_transaction():
        context.run_migrations()


async def _run_async() -> None:
    engine = create_async_engine(config.get_main_option("sqlalchemy.url") or "")
    async with engine.connect() as connection:
        await connection.run_sync(_run)
    await engine.dispose()


asyncio.run(_run_async())
