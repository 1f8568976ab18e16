"""The Alembic migrations build exactly the schema the models describe."""

from __future__ import annotations

from typing import Any

from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext
from sqlalchemy import text

from bai.manager.db import Base
from bai.manager.db.migrations import upgrade_async
from tests.manager.fixtures import ManagerHandle


async def test_migrated_schema_matches_the_models(manager: ManagerHandle) -> None:
    await upgrade_async(manager.ctx.config.db.url)  # at head already: a no-op, twice is fine

    def diff(connection: Any) -> list[Any]:
        context = MigrationContext.configure(connection, opts={"compare_type": True})
        return list(compare_metadata(context, Base.metadata))

    async with manager.ctx.engine.connect() as connection:
        differences = await connection.run_sync(diff)
        version = (
            await connection.execute(text("SELECT version_num FROM alembic_version"))
        ).scalar()
    assert differences == [], differences
    assert version is not None
