"""The audit log's writer: entries of concurrent calls go in one INSERT.

Every write RPC records an entry before it answers. Written one statement
each, they were a round trip per call; in group commit (group_commit.py) the
entries that arrive while one INSERT runs go together in the next, and each
call still answers only once its entry is stored.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any, cast

from sqlalchemy import Table, insert
from sqlalchemy.ext.asyncio import AsyncEngine

from bai.manager.db.audit import AuditLogRow
from bai.manager.group_commit import GroupCommit

_INSERT = insert(cast(Table, AuditLogRow.__table__))


class AuditTrail:
    """`await trail.record(entry)`: the entry (audit_logs column values) is stored."""

    def __init__(self, engine: AsyncEngine) -> None:
        self._engine = engine
        self._group: GroupCommit[dict[str, Any], None] = GroupCommit(self._insert)

    async def record(self, entry: dict[str, Any]) -> None:
        await self._group.submit(entry)

    async def close(self) -> None:
        await self._group.close()

    async def _insert(self, entries: Sequence[dict[str, Any]]) -> list[None]:
        # One statement, atomic on its own: no BEGIN and COMMIT round trips.
        async with self._engine.connect() as db:
            await db.execution_options(isolation_level="AUTOCOMMIT")
            await db.execute(_INSERT, list(entries))
        return [None] * len(entries)
