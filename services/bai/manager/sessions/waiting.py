"""Wait for a new session to settle: RUNNING, a terminal status, or a time limit.

The session event feed wakes the waiter. An event of this session that says it
settled ends the wait (events are published after the change is committed, and
the caller reads the session from the database next); other sessions' events
cost no query. The database row is read once per poll interval as well, so a
lost event costs at most that.
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
from bai.manager.sessions import events, lifecycle, names

SETTLED = lifecycle.SESSION_TERMINAL | {"RUNNING"}
_SETTLED_VALUES = frozenset(names.session_status_value(name) for name in SETTLED)
POLL_SECONDS = 1.0


def settled_by(found: list[events.StoredEvent], session_id: str) -> bool:
    """Whether one of the events says the session reached a settled status."""
    return any(
        stored.scope.session_id == session_id and stored.event.session_status in _SETTLED_VALUES
        for stored in found
    )


async def settled_in_db(sessions: async_sessionmaker[AsyncSession], session_id: uuid.UUID) -> bool:
    async with sessions() as db:
        status = await db.scalar(select(SessionRow.status).where(SessionRow.id == session_id))
    return status is None or status in SETTLED


async def wait_settled(
    sessions: async_sessionmaker[AsyncSession],
    redis: Redis,
    session_id: uuid.UUID,
    max_wait: float | None,
    cursor: str,
) -> bool:
    """True when `max_wait` seconds passed first; None waits until cancelled.

    `cursor`: the feed's position from before the session was created, so that no
    event of it is missed."""
    loop = asyncio.get_running_loop()
    deadline = None if max_wait is None else loop.time() + max_wait
    next_check = loop.time() + POLL_SECONDS
    while True:
        now = loop.time()
        if deadline is not None and now >= deadline:
            return not await settled_in_db(sessions, session_id)
        until = next_check if deadline is None else min(next_check, deadline)
        block = timedelta(seconds=max(until - now, 0.001))
        try:
            found = await events.read_after(redis, cursor, block=block)
        except RedisError:
            await asyncio.sleep(block.total_seconds())
            found = []
        if found:
            cursor = found[-1].cursor
            if settled_by(found, str(session_id)):
                return False
        if loop.time() >= next_check:
            if await settled_in_db(sessions, session_id):
                return False
            next_check = loop.time() + POLL_SECONDS
