"""Destroy, restart, rename and interrupt sessions.

Destroy: a PENDING session is CANCELLED at once (no agent holds anything).
Otherwise kernels go to TERMINATING and their agents get DestroyKernel after
the commit; kernels whose agent is gone (LOST, TERMINATED, unknown) or that
the agent does not know end TERMINATED at once, so nothing stays stuck.
`forced` also ends every kernel right away (the agents are still told).
Destroying a TERMINATING or ended session changes nothing.
"""

from __future__ import annotations

import asyncio
import logging
import uuid
from dataclasses import dataclass, field
from datetime import datetime

from sqlalchemy import func, select
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from bai.api.agent.v1 import agent_pb2
from bai.common.errors import (
    AlreadyExists,
    BaiError,
    FailedPrecondition,
    PermissionDenied,
    Unavailable,
)
from bai.manager.agents.pool import AgentClientPool
from bai.manager.auth.principal import Principal, Role
from bai.manager.db.compute import AgentRow, KernelRow, SessionRow
from bai.manager.sessions import lifecycle, names, transitions
from bai.manager.sessions.queries import LoadedSession, load, load_writable

log = logging.getLogger(__name__)

# Agents in these states can be asked to destroy a kernel.
REACHABLE_AGENT = frozenset({"ALIVE", "RESTARTING"})


@dataclass
class DestroyOrder:
    """What to tell agents after the commit: (agent id, kernel id)."""

    kernels: list[tuple[str, str]] = field(default_factory=list)
    reason: str = "user-requested"
    forced: bool = False
    events: transitions.PendingEvents = field(default_factory=transitions.PendingEvents)


def not_ready(session: SessionRow) -> FailedPrecondition:
    return FailedPrecondition(
        f"the session is {session.status}, not RUNNING",
        reason="SESSION_NOT_READY",
        metadata={"status": session.status},
    )


async def _dependents(db: AsyncSession, session_id: uuid.UUID) -> list[uuid.UUID]:
    query = select(SessionRow.id).where(
        SessionRow.status.not_in(lifecycle.SESSION_TERMINAL),
        SessionRow.dependencies.contains([str(session_id)]),
    )
    return list((await db.execute(query)).scalars())


async def reachable_agents(db: AsyncSession, kernels: list[KernelRow]) -> set[str]:
    ids = {k.agent_id for k in kernels if k.agent_id}
    if not ids:
        return set()
    query = select(AgentRow.id).where(AgentRow.id.in_(ids), AgentRow.status.in_(REACHABLE_AGENT))
    return set((await db.execute(query)).scalars())


async def end_now(
    db: AsyncSession, loaded: LoadedSession, status_of: str, reason: str, now: datetime
) -> transitions.PendingEvents:
    """Every live kernel ends at once (CANCELLED if it never ran, else `status_of`)."""
    out = transitions.PendingEvents()
    for kernel in loaded.kernels:
        if kernel.status in lifecycle.KERNEL_TERMINAL:
            continue
        status = status_of if kernel.started_at is not None else "CANCELLED"
        out.extend(
            await transitions.set_kernel_status(
                db, loaded.session, kernel, status, now, reason=reason, siblings=loaded.kernels
            )
        )
    return out


async def _destroy_locked(
    db: AsyncSession, loaded: LoadedSession, forced: bool, reason: str, now: datetime
) -> DestroyOrder:
    session = loaded.session
    order = DestroyOrder(reason=reason, forced=forced)
    if session.status in lifecycle.SESSION_TERMINAL:
        return order
    if session.status == "TERMINATING" and not forced:
        return order
    if session.status == "PENDING":
        order.events.extend(await end_now(db, loaded, "CANCELLED", reason, now))
        return order
    reachable = await reachable_agents(db, loaded.kernels)
    for kernel in loaded.kernels:
        if kernel.status in lifecycle.KERNEL_TERMINAL:
            continue
        if kernel.agent_id in reachable:
            order.kernels.append((kernel.agent_id or "", str(kernel.id)))
            target = "TERMINATED" if forced else "TERMINATING"
        else:
            target = "TERMINATED"
        if target == "TERMINATED" and kernel.started_at is None and not kernel.container_id:
            target = "CANCELLED"
        order.events.extend(
            await transitions.set_kernel_status(
                db, session, kernel, target, now, reason=reason, siblings=loaded.kernels
            )
        )
    return order


async def destroy(
    db: AsyncSession,
    p: Principal,
    session_id: uuid.UUID,
    *,
    forced: bool,
    recursive: bool,
    now: datetime,
) -> tuple[LoadedSession, list[DestroyOrder]]:
    """Change the rows (caller's transaction); the orders are sent with `send_destroy`."""
    loaded = await load_writable(db, p, session_id, lock=True)
    if forced and loaded.session.user_id != p.user_id and p.role is Role.USER:
        raise PermissionDenied("forced destroy of another user's session", reason="ROLE_FORBIDDEN")
    reason = "force-terminated" if forced else "user-requested"
    orders: list[DestroyOrder] = []
    if loaded.session.status not in lifecycle.SESSION_TERMINAL:
        dependents = await _dependents(db, session_id)
        if dependents and not recursive:
            raise FailedPrecondition(
                f"{len(dependents)} live sessions depend on this one", reason="IN_USE"
            )
        for dependent in dependents:
            other = await load(db, dependent, lock=True)
            if other is not None:
                orders.append(await _destroy_locked(db, other, forced, reason, now))
    orders.append(await _destroy_locked(db, loaded, forced, reason, now))
    return loaded, orders


async def send_destroy(
    sessions: async_sessionmaker[AsyncSession],
    pool: AgentClientPool,
    order: DestroyOrder,
    now: datetime,
) -> transitions.PendingEvents:
    """DestroyKernel to each agent; a kernel the agent does not know ends at once.
    An unreachable agent is left to the sweeper (TERMINATING has a retry budget)."""
    reason_value = names.reason_value(order.reason)

    async def one(agent_id: str, kernel_id: str) -> transitions.PendingEvents:
        request = agent_pb2.DestroyKernelRequest(
            kernel_id=kernel_id,
            reason=reason_value,  # type: ignore[arg-type]
            forced=order.forced,
        )
        try:
            reply = await pool.call(agent_id, "DestroyKernel", request)
        except BaiError as exc:
            log.info("DestroyKernel %s on %s deferred: %s", kernel_id, agent_id, exc.message)
            return transitions.PendingEvents()
        if reply.found:
            return transitions.PendingEvents()
        return await _end_kernel(sessions, uuid.UUID(kernel_id), order.reason, now)

    out = transitions.PendingEvents()
    for pending in await asyncio.gather(*(one(a, k) for a, k in order.kernels)):
        out.extend(pending)
    return out


async def _end_kernel(
    sessions: async_sessionmaker[AsyncSession], kernel_id: uuid.UUID, reason: str, now: datetime
) -> transitions.PendingEvents:
    async with sessions() as db, db.begin():
        session_id = await db.scalar(select(KernelRow.session_id).where(KernelRow.id == kernel_id))
        loaded = None if session_id is None else await load(db, session_id, lock=True)
        if loaded is None:
            return transitions.PendingEvents()
        kernel = next(k for k in loaded.kernels if k.id == kernel_id)
        status = "TERMINATED" if kernel.started_at is not None else "CANCELLED"
        return await transitions.set_kernel_status(
            db, loaded.session, kernel, status, now, reason=reason, siblings=loaded.kernels
        )


async def rename(
    db: AsyncSession, p: Principal, session_id: uuid.UUID, new_name: str
) -> LoadedSession:
    loaded = await load_writable(db, p, session_id, lock=True)
    session = loaded.session
    if session.status in lifecycle.SESSION_TERMINAL:
        raise FailedPrecondition("ended sessions cannot be renamed", reason="INVALID_STATE")
    if session.name == new_name:
        return loaded
    await db.execute(select(func.pg_advisory_xact_lock(func.hashtext(session.access_key))))
    taken = await db.scalar(
        select(func.count())
        .select_from(SessionRow)
        .where(
            SessionRow.access_key == session.access_key,
            SessionRow.name == new_name,
            SessionRow.status.not_in(lifecycle.SESSION_TERMINAL),
        )
    )
    if taken:
        raise AlreadyExists(f"a live session named {new_name!r} already exists")
    session.name = new_name
    return loaded


async def begin_restart(
    db: AsyncSession, p: Principal, session_id: uuid.UUID, now: datetime
) -> tuple[LoadedSession, transitions.PendingEvents]:
    """RUNNING -> RESTARTING for every kernel; the caller then calls the agents."""
    loaded = await load_writable(db, p, session_id, lock=True)
    if loaded.session.status != "RUNNING":
        raise not_ready(loaded.session)
    reachable = await reachable_agents(db, loaded.kernels)
    for kernel in loaded.kernels:
        if kernel.agent_id not in reachable:
            raise Unavailable(
                f"agent {kernel.agent_id} is not connected",
                reason="AGENT_UNAVAILABLE",
                metadata={"agent_id": kernel.agent_id or ""},
            )
    out = transitions.PendingEvents()
    for kernel in loaded.kernels:
        out.extend(
            await transitions.set_kernel_status(
                db,
                loaded.session,
                kernel,
                "RESTARTING",
                now,
                reason="restarting",
                siblings=loaded.kernels,
            )
        )
    return loaded, out
