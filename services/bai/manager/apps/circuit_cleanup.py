"""Remove the app-proxy circuits of sessions that are ending.

Follows the session event feed and deletes a session's circuits as soon as
it is TERMINATING or has ended; a reconcile pass at start and every few
minutes catches what the feed could not tell (Coordinator down at the time,
events trimmed, manager restarted). Deleting is idempotent, so several
manager replicas doing it at once is harmless.
"""

from __future__ import annotations

import asyncio
import logging
import uuid
from datetime import timedelta

from redis.asyncio import Redis
from redis.exceptions import RedisError
from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from bai.api.common.v1 import session_pb2 as common_pb
from bai.common.errors import BaiError
from bai.manager.apps.coordinator import CoordinatorClient
from bai.manager.db.compute import SessionRow
from bai.manager.sessions import events, lifecycle

log = logging.getLogger(__name__)

ENDING = frozenset(
    {
        common_pb.SESSION_STATUS_TERMINATING,
        common_pb.SESSION_STATUS_TERMINATED,
        common_pb.SESSION_STATUS_CANCELLED,
        common_pb.SESSION_STATUS_ERROR,
    }
)
RECONCILE_EVERY = timedelta(minutes=3)
RETRY_AFTER = timedelta(seconds=5)


async def remove_circuits_of(coordinator: CoordinatorClient, session_id: str) -> int:
    removed = 0
    for circuit in await coordinator.circuits_of_session(session_id):
        await coordinator.delete_circuit(circuit.id)
        removed += 1
    return removed


async def reconcile(
    sessions: async_sessionmaker[AsyncSession], coordinator: CoordinatorClient
) -> int:
    """Delete every circuit whose sessions have all ended; returns how many."""
    circuits = await coordinator.circuits_of_session("")
    ids = {uuid.UUID(s) for c in circuits for s in c.session_ids if _is_uuid(s)}
    live: set[str] = set()
    if ids:
        async with sessions() as db:
            query = select(SessionRow.id).where(
                SessionRow.id.in_(ids), SessionRow.status.not_in(lifecycle.SESSION_TERMINAL)
            )
            live = {str(i) for i in (await db.execute(query)).scalars()}
    removed = 0
    for circuit in circuits:
        if circuit.session_ids and not live.intersection(circuit.session_ids):
            await coordinator.delete_circuit(circuit.id)
            removed += 1
    return removed


def _is_uuid(value: str) -> bool:
    try:
        uuid.UUID(value)
    except ValueError:
        return False
    return True


async def run_forever(
    sessions: async_sessionmaker[AsyncSession], redis: Redis, coordinator: CoordinatorClient
) -> None:
    loop = asyncio.get_running_loop()
    next_reconcile = loop.time()
    cursor: str | None = None
    while True:
        try:
            if cursor is None:
                cursor = await events.latest_cursor(redis)
            if loop.time() >= next_reconcile:
                removed = await reconcile(sessions, coordinator)
                if removed:
                    log.info("removed %d circuits of ended sessions", removed)
                next_reconcile = loop.time() + RECONCILE_EVERY.total_seconds()
            for stored in await events.read_after(redis, cursor, block=events.MAX_BLOCK):
                cursor = stored.cursor
                if stored.event.session_status in ENDING:
                    await remove_circuits_of(coordinator, stored.event.session_id)
        except asyncio.CancelledError:
            raise
        except (BaiError, RedisError) as exc:
            # Missed endings are caught by the next reconcile pass.
            log.warning("app circuit cleanup: %s", exc)
            next_reconcile = min(next_reconcile, loop.time() + RETRY_AFTER.total_seconds())
            await asyncio.sleep(RETRY_AFTER.total_seconds())
