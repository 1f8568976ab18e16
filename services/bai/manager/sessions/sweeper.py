"""No session stays stuck: timeouts of transitional statuses, batch and pending limits.

For each session in a transitional status, `lifecycle.timeout_action` says:
- RETRY: re-send the step that should have moved it on (CreateKernels, which
  is idempotent per kernel id; DestroyKernel again). The retry is claimed
  with a conditional UPDATE, so two replicas never both retry one session;
- GIVE_UP: end the session with the policy's status and reason (kernels
  first, through transitions.py, so their slots go back to the agents).
Also: batch sessions RUNNING past batch_timeout (the agent should have ended
them) are destroyed with task-timeout, and sessions PENDING longer than their
scaling group's pending_timeout are cancelled.
"""

from __future__ import annotations

import asyncio
import logging
import uuid
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

from redis.asyncio import Redis
from sqlalchemy import select, update
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from bai.manager.agents.kernel_updates import publish_quietly
from bai.manager.agents.pool import AgentClientPool
from bai.manager.db.compute import SessionRow
from bai.manager.db.policies import ScalingGroupRow
from bai.manager.images.registries import NO_REGISTRIES, Registries
from bai.manager.sessions import control, dispatch, lifecycle, transitions
from bai.manager.sessions.queries import load

log = logging.getLogger(__name__)

# The agent enforces batch_timeout; the manager steps in after this much more.
BATCH_TIMEOUT_GRACE = timedelta(seconds=30)


@dataclass
class SweepResult:
    retried: int = 0
    given_up: int = 0
    batch_timeouts: int = 0
    pending_timeouts: int = 0


async def _claim_retry(
    db: AsyncSession, session_id: uuid.UUID, status: str, retries: int, now: datetime
) -> bool:
    changed = await db.execute(
        update(SessionRow)
        .where(
            SessionRow.id == session_id,
            SessionRow.status == status,
            SessionRow.transition_retries == retries,
        )
        .values(transition_retries=retries + 1, status_changed_at=now)
        .execution_options(synchronize_session=False)
    )
    return bool(changed.rowcount)  # type: ignore[attr-defined]


async def _retry(
    sessions: async_sessionmaker[AsyncSession],
    redis: Redis,
    pool: AgentClientPool,
    session_id: uuid.UUID,
    status: str,
    now: datetime,
    registries: Registries,
) -> None:
    if status in dispatch.DISPATCHABLE:
        await dispatch.dispatch(sessions, redis, pool, session_id, lambda: now, registries)
        return
    if status != "TERMINATING":
        return
    async with sessions() as db, db.begin():
        loaded = await load(db, session_id, lock=True)
        if loaded is None or loaded.session.status != "TERMINATING":
            return
        order = control.DestroyOrder(reason=loaded.session.status_reason or "user-requested")
        reachable = await control.reachable_agents(db, loaded.kernels)
        for kernel in loaded.kernels:
            if kernel.status in lifecycle.KERNEL_TERMINAL:
                continue
            if kernel.agent_id in reachable:
                order.kernels.append((kernel.agent_id or "", str(kernel.id)))
            else:
                order.events.extend(
                    await transitions.set_kernel_status(
                        db,
                        loaded.session,
                        kernel,
                        "TERMINATED",
                        now,
                        reason="agent-lost",
                        siblings=loaded.kernels,
                    )
                )
    await publish_quietly(redis, order.events)
    await publish_quietly(redis, await control.send_destroy(sessions, pool, order, now))


_KERNEL_END = {"CANCELLED": "CANCELLED", "TERMINATED": "TERMINATED", "ERROR": "ERROR"}


async def give_up(
    sessions: async_sessionmaker[AsyncSession],
    redis: Redis,
    pool: AgentClientPool,
    session_id: uuid.UUID,
    status: str,
    final_status: str,
    reason: str,
    now: datetime,
) -> bool:
    """End a session that stayed in `status` too long; False if it moved meanwhile."""
    order = control.DestroyOrder(reason=reason, forced=True)
    async with sessions() as db, db.begin():
        loaded = await load(db, session_id, lock=True)
        if loaded is None or loaded.session.status != status:
            return False
        session = loaded.session
        for kernel in loaded.kernels:
            if kernel.status in lifecycle.KERNEL_TERMINAL:
                continue
            if kernel.agent_id:
                order.kernels.append((kernel.agent_id, str(kernel.id)))
            order.events.extend(
                await transitions.set_kernel_status(
                    db,
                    session,
                    kernel,
                    _KERNEL_END.get(final_status, "CANCELLED"),
                    now,
                    reason=reason,
                    message=f"{status} timed out",
                    siblings=loaded.kernels,
                )
            )
        if session.status not in lifecycle.SESSION_TERMINAL:
            order.events.extend(
                transitions.set_session_status(
                    session, final_status, now, reason=reason, message=f"{status} timed out"
                )
            )
    await publish_quietly(redis, order.events)
    # The agents may still hold containers: tell them (best effort; found=False is fine).
    await control.send_destroy(sessions, pool, order, now)
    return True


async def _stuck_sessions(
    sessions: async_sessionmaker[AsyncSession], now: datetime
) -> list[tuple[uuid.UUID, str, lifecycle.TimeoutAction, int]]:
    async with sessions() as db:
        rows = (
            await db.execute(
                select(
                    SessionRow.id,
                    SessionRow.status,
                    SessionRow.status_changed_at,
                    SessionRow.transition_retries,
                ).where(SessionRow.status.in_(lifecycle.TRANSITION_POLICIES))
            )
        ).all()
        out: list[tuple[uuid.UUID, str, lifecycle.TimeoutAction, int]] = []
        for session_id, status, changed_at, retries in rows:
            action = lifecycle.timeout_action(status, changed_at, retries, now)
            if action is not lifecycle.TimeoutAction.WAIT:
                out.append((session_id, status, action, retries))
        return out


async def _overdue_batches(
    sessions: async_sessionmaker[AsyncSession], now: datetime
) -> list[uuid.UUID]:
    async with sessions() as db:
        rows = (
            await db.execute(
                select(SessionRow.id, SessionRow.started_at, SessionRow.batch_timeout).where(
                    SessionRow.status == "RUNNING",
                    SessionRow.session_type == "batch",
                    SessionRow.batch_timeout > 0,
                )
            )
        ).all()
        return [
            session_id
            for session_id, started, limit in rows
            if started is not None
            and now - started > timedelta(seconds=limit) + BATCH_TIMEOUT_GRACE
        ]


async def _overdue_pending(
    sessions: async_sessionmaker[AsyncSession], now: datetime
) -> list[uuid.UUID]:
    async with sessions() as db:
        groups = {
            name: int(opts.get("pending_timeout", 0) or 0)
            for name, opts in (
                await db.execute(select(ScalingGroupRow.name, ScalingGroupRow.scheduler_opts))
            ).all()
        }
        limited = [name for name, seconds in groups.items() if seconds > 0]
        if not limited:
            return []
        rows = (
            await db.execute(
                select(SessionRow.id, SessionRow.scaling_group, SessionRow.created_at).where(
                    SessionRow.status == "PENDING", SessionRow.scaling_group.in_(limited)
                )
            )
        ).all()
        return [
            session_id
            for session_id, group, created in rows
            if now - created > timedelta(seconds=groups[group])
        ]


async def sweep_once(
    sessions: async_sessionmaker[AsyncSession],
    redis: Redis,
    pool: AgentClientPool,
    now: datetime,
    registries: Registries = NO_REGISTRIES,
) -> SweepResult:
    result = SweepResult()
    for session_id, status, action, retries in await _stuck_sessions(sessions, now):
        policy = lifecycle.TRANSITION_POLICIES[status]
        if action is lifecycle.TimeoutAction.RETRY:
            async with sessions() as db, db.begin():
                claimed = await _claim_retry(db, session_id, status, retries, now)
            if claimed:
                result.retried += 1
                await _retry(sessions, redis, pool, session_id, status, now, registries)
        elif await give_up(
            sessions,
            redis,
            pool,
            session_id,
            status,
            policy.give_up_status,
            policy.give_up_reason,
            now,
        ):
            result.given_up += 1
    for session_id in await _overdue_batches(sessions, now):
        if await _end_batch(sessions, redis, pool, session_id, now):
            result.batch_timeouts += 1
    for session_id in await _overdue_pending(sessions, now):
        if await give_up(
            sessions, redis, pool, session_id, "PENDING", "CANCELLED", "pending-timeout", now
        ):
            result.pending_timeouts += 1
    return result


async def _end_batch(
    sessions: async_sessionmaker[AsyncSession],
    redis: Redis,
    pool: AgentClientPool,
    session_id: uuid.UUID,
    now: datetime,
) -> bool:
    pending = transitions.PendingEvents()
    async with sessions() as db, db.begin():
        loaded = await load(db, session_id, lock=True)
        if loaded is None or loaded.session.status != "RUNNING":
            return False
        pending.extend(
            transitions.set_session_result(loaded.session, "failure", None, now, "task-timeout")
        )
    await publish_quietly(redis, pending)
    return await give_up(
        sessions, redis, pool, session_id, "RUNNING", "TERMINATED", "task-timeout", now
    )


async def run_forever(
    sessions: async_sessionmaker[AsyncSession],
    redis: Redis,
    pool: AgentClientPool,
    interval: float,
    registries: Registries = NO_REGISTRIES,
) -> None:
    while True:
        try:
            await sweep_once(sessions, redis, pool, datetime.now(UTC), registries)
        except Exception:
            log.exception("session sweep failed")
        await asyncio.sleep(interval)
