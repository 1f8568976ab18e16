"""The background scheduler: rounds per scaling group, then dispatch.

A round runs when something may have changed (a session was enqueued or
freed slots: `wake()` publishes on Redis and every replica listens) and at
least every tick. Each round, per scaling group with PENDING sessions:
snapshot -> schedule() -> apply in one transaction -> publish events ->
CreateKernels for the sessions this replica placed. Replicas need no lock
between them: the applier's optimistic checks keep them from over-allocating.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import uuid
from collections.abc import Callable
from datetime import UTC, datetime

from redis.asyncio import Redis
from redis.exceptions import RedisError
from sqlalchemy.exc import SQLAlchemyError
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from bai.manager.agents.kernel_updates import publish_quietly
from bai.manager.agents.pool import AgentClientPool
from bai.manager.db.policies import ScalingGroupRow
from bai.manager.images.registries import NO_REGISTRIES, Registries
from bai.manager.scheduling import schedule
from bai.manager.sessions import applier, dispatch, snapshot_builder

log = logging.getLogger(__name__)

WAKEUP_CHANNEL = "bai:scheduler:wakeup"
ROUND_ROBIN_KEY = "bai:scheduler:rr:"


async def wake(redis: Redis) -> None:
    """Ask every replica's scheduler for a round now (best effort: ticks still run)."""
    try:
        await redis.publish(WAKEUP_CHANNEL, b"1")
    except RedisError as exc:
        log.debug("scheduler wake-up not sent: %s", exc)


def _now() -> datetime:
    return datetime.now(UTC)


class SchedulingLoop:
    def __init__(
        self,
        sessions: async_sessionmaker[AsyncSession],
        redis: Redis,
        pool: AgentClientPool,
        defaults: snapshot_builder.SchedulerDefaults,
        *,
        tick_seconds: float = 1.0,
        now: Callable[[], datetime] = _now,
        registries: Registries = NO_REGISTRIES,
    ) -> None:
        self._sessions = sessions
        self._redis = redis
        self._pool = pool
        self._defaults = defaults
        self._tick = tick_seconds
        self._now = now
        self._registries = registries
        self._woken = asyncio.Event()
        self._dispatches: set[asyncio.Task[None]] = set()

    async def schedule_group(self, name: str) -> applier.ApplyResult:
        """One round for one scaling group (snapshot, plan, apply); dispatch not included."""
        now = self._now()
        cursor_key = ROUND_ROBIN_KEY + name
        raw_cursor = await self._redis.get(cursor_key)
        cursor = raw_cursor.decode() if isinstance(raw_cursor, bytes) else None
        async with self._sessions() as db, db.begin():
            group = await db.get(ScalingGroupRow, name)
            if group is None or not group.is_active:
                return applier.ApplyResult()
            config = snapshot_builder.scheduler_config(group, self._defaults)
            snapshot = await snapshot_builder.build_snapshot(
                db, group, now, limit=config.max_sessions_per_round, round_robin_cursor=cursor
            )
            if not snapshot.pending:
                return applier.ApplyResult()
            plan = schedule(snapshot, config)
            result = await applier.apply_plan(db, snapshot, plan, now)
        if plan.round_robin_cursor and plan.round_robin_cursor != cursor:
            await self._redis.set(cursor_key, plan.round_robin_cursor)
        await publish_quietly(self._redis, result.events)
        return result

    async def run_once(self) -> list[uuid.UUID]:
        """A round over every group with PENDING sessions; dispatches what it placed."""
        async with self._sessions() as db:
            groups = await snapshot_builder.groups_with_pending(db)
        scheduled: list[uuid.UUID] = []
        for name in groups:
            result = await self.schedule_group(name)
            scheduled.extend(result.scheduled)
        if scheduled:
            self._start_dispatch(scheduled)
        return scheduled

    def _start_dispatch(self, session_ids: list[uuid.UUID]) -> None:
        task = asyncio.create_task(
            dispatch.dispatch_round(
                self._sessions, self._redis, self._pool, session_ids, self._now, self._registries
            )
        )
        self._dispatches.add(task)
        task.add_done_callback(self._dispatch_done)

    def _dispatch_done(self, task: asyncio.Task[None]) -> None:
        self._dispatches.discard(task)
        if not task.cancelled() and task.exception() is not None:
            log.error("dispatch failed", exc_info=task.exception())

    async def _listen(self) -> None:
        """Turn wake-up messages into `_woken`; reconnects after Redis errors."""
        while True:
            try:
                pubsub = self._redis.pubsub()
                await pubsub.subscribe(WAKEUP_CHANNEL)
                try:
                    async for message in pubsub.listen():
                        if message.get("type") == "message":
                            self._woken.set()
                finally:
                    with contextlib.suppress(RedisError, OSError):
                        await pubsub.aclose()  # type: ignore[no-untyped-call]
            except (RedisError, OSError) as exc:
                log.warning("scheduler wake-up channel lost: %s", exc)
                await asyncio.sleep(self._tick)

    async def run(self) -> None:
        listener = asyncio.create_task(self._listen())
        try:
            while True:
                try:
                    await self.run_once()
                except (SQLAlchemyError, RedisError, OSError) as exc:
                    log.warning("scheduling round failed: %s", exc)
                except Exception:
                    log.exception("scheduling round failed")
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(self._woken.wait(), self._tick)
                self._woken.clear()
        finally:
            listener.cancel()
            for task in [listener, *self._dispatches]:
                task.cancel()
                with contextlib.suppress(asyncio.CancelledError, Exception):
                    await task
