"""Wait for a new session to settle: RUNNING, a terminal status, or a time limit.

The session event feed wakes the waiter; the database row decides (events
only notify), so a lost event costs at most one poll interval.
"""

from __future__ import annotations

import asyncio
import uuid
from datetime import timedelta

from redis.asyncio import Redis
from redis.exceptions import RedisError
from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from bai.manager.db.compute import SessionRow
from bai.manager.sessions import events, lifecycle

SETTLED = lifecycle.SESSION_TERMINAL | {"RUNNING"}
POLL = timedelta(seconds=1)


async def wait_settled(
    sessions: async_sessionmaker[AsyncSession],
    redis: Redis,
    session_id: uuid.UUID,
    max_wait: float | None,
    cursor: str,
) -> bool:
    """True when `max_wait` seconds passed first; None waits until cancelled."""
    loop = asyncio.get_running_loop()
    deadline = None if max_wait is None else loop.time() + max_wait
    while True:
        async with sessions() as db:
            status = await db.scalar(select(SessionRow.status).where(SessionRow.id == session_id))
        if status is None or status in SETTLED:
            return False
        block = POLL
        if deadline is not None:
            remaining = deadline - loop.time()
            if remaining <= 0:
                return True
            block = min(POLL, timedelta(seconds=remaining))
        try:
            found = await events.read_after(redis, cursor, block=block)
        except RedisError:
            await asyncio.sleep(block.total_seconds())
            continue
        if found:
            cursor = found[-1].cursor
