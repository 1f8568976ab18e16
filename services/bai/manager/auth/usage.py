"""Keypair usage (num_queries, last_used_at): counted in memory, flushed to PostgreSQL.

Each manager replica counts the calls it authenticates and adds them to the
keypairs table every few seconds (an increment, so replicas never overwrite
each other). Counting costs a dict update on the hot path; at most one
flush interval of counts is lost if a replica dies.
"""

from __future__ import annotations

import asyncio
import logging
from datetime import UTC, datetime

from sqlalchemy import update
from sqlalchemy.exc import SQLAlchemyError
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from bai.manager.db.identity import KeypairRow

log = logging.getLogger(__name__)


class UsageCounter:
    def __init__(self) -> None:
        # access key -> (calls since the last flush, time of the latest call)
        self._pending: dict[str, tuple[int, float]] = {}

    def record(self, access_key: str, now: float) -> None:
        count, _ = self._pending.get(access_key, (0, now))
        self._pending[access_key] = (count + 1, now)

    async def flush(self, sessions: async_sessionmaker[AsyncSession]) -> int:
        """Add the pending counts to the keypairs table; returns keypairs updated."""
        pending, self._pending = self._pending, {}
        if not pending:
            return 0
        try:
            async with sessions() as db, db.begin():
                for access_key, (count, last) in sorted(pending.items()):
                    await db.execute(
                        update(KeypairRow)
                        .where(KeypairRow.access_key == access_key)
                        .values(
                            num_queries=KeypairRow.num_queries + count,
                            last_used_at=datetime.fromtimestamp(last, UTC),
                        )
                    )
        except BaseException:
            # Put the counts back so that the next flush carries them.
            for access_key, (count, last) in pending.items():
                newer, latest = self._pending.get(access_key, (0, last))
                self._pending[access_key] = (count + newer, max(last, latest))
            raise
        return len(pending)


async def flush_forever(
    counter: UsageCounter, sessions: async_sessionmaker[AsyncSession], interval: float
) -> None:
    while True:
        await asyncio.sleep(interval)
        try:
            await counter.flush(sessions)
        except SQLAlchemyError:
            log.warning("could not flush keypair usage; will retry", exc_info=True)
