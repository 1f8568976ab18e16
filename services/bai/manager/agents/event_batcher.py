"""Agent event bursts in group commit: the bursts of every registry stream of
this replica that arrive while one transaction runs are applied in the next.

With many agents each stream's burst is small (an event or two), and a
transaction costs about the same for one event as for fifty; applying them
together keeps the cost per event flat as agents are added.

Each stream submits one burst at a time and waits for it, so a batch never
holds two bursts of one stream and every agent's events stay in order. A
batch that cannot be applied whole (a replayed burst, a bad event) is
retried burst by burst (group_commit.py), so one stream's problem stays its own.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import UTC, datetime

from redis.asyncio import Redis
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from bai.manager.agents import ingest
from bai.manager.group_commit import GroupCommit

# Events applied in one transaction at most; bursts beyond wait for the next one.
MAX_EVENTS = 512


class _NotWhole(Exception):
    """A burst of the batch had been applied before: nothing was; retry one by one."""


class EventBatcher:
    """`await batcher.apply(burst)`: the kernel ids the burst reported that are not
    live on its agent once applied, or None when it had been applied before."""

    def __init__(self, sessions: async_sessionmaker[AsyncSession], redis: Redis) -> None:
        self._sessions = sessions
        self._redis = redis
        self._group: GroupCommit[ingest.Burst, set[str] | None] = GroupCommit(
            self._apply_many, max_weight=MAX_EVENTS, weight=lambda burst: len(burst.events)
        )

    async def apply(self, burst: ingest.Burst) -> set[str] | None:
        return await self._group.submit(burst)

    async def close(self) -> None:
        await self._group.close()

    async def _apply_many(self, bursts: Sequence[ingest.Burst]) -> list[set[str] | None]:
        now = datetime.now(UTC)
        applied = await ingest.apply_bursts(self._sessions, self._redis, bursts, now)
        if applied is not None:
            return list(applied)
        if len(bursts) > 1:
            raise _NotWhole
        return [None]
