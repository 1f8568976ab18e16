"""Kernel changes reported by agents (or concluded about them), applied through
transitions.py one session at a time.

Lock order everywhere in this package: session row, then its kernels, then
(inside transitions.release_agent_slots) the agent row. Agent-row updates of
the registry stream run in their own transactions, never while holding a
session, so no two of our transactions wait on each other in a cycle.
"""

from __future__ import annotations

import logging
import uuid
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from redis.asyncio import Redis
from redis.exceptions import RedisError
from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from bai.common.slots import Slots
from bai.manager.db.compute import AgentRow, KernelRow, SessionRow
from bai.manager.sessions import lifecycle
from bai.manager.sessions.transitions import PendingEvents, publish_all, set_kernel_status

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class RuntimeInfo:
    """Where a running kernel lives (KernelRuntimeInfo), in the JSONB shapes stored."""

    container_id: str
    kernel_host: str
    service_ports: list[dict[str, Any]]
    host_ports: list[int]
    attached_devices: list[dict[str, Any]]
    allocated_slots: dict[str, str]


@dataclass(frozen=True)
class KernelReport:
    """An agent's word about one kernel: a kernel event, or its state in a snapshot."""

    kernel_id: str
    status: str
    reason: str = ""
    message: str = ""
    exit_code: int | None = None
    runtime: RuntimeInfo | None = None


def parse_uuid(value: str) -> uuid.UUID | None:
    try:
        return uuid.UUID(value)
    except ValueError:
        return None


async def locked_session(
    db: AsyncSession, session_id: uuid.UUID
) -> tuple[SessionRow, list[KernelRow]] | None:
    """The session and all its kernels, locked for update (in that order)."""
    session = (
        await db.execute(select(SessionRow).where(SessionRow.id == session_id).with_for_update())
    ).scalar_one_or_none()
    if session is None:
        return None
    kernels = (
        await db.execute(
            select(KernelRow)
            .where(KernelRow.session_id == session_id)
            .order_by(KernelRow.id)
            .with_for_update()
        )
    ).scalars()
    return session, list(kernels)


async def lock_sessions(
    db: AsyncSession, session_ids: Iterable[uuid.UUID]
) -> dict[uuid.UUID, tuple[SessionRow, list[KernelRow]]]:
    """Several sessions and their kernels, locked for update in id order (so that
    two transactions locking overlapping sets never wait on each other in a cycle)."""
    ids = sorted(set(session_ids))
    if not ids:
        return {}
    rows = await db.execute(
        select(SessionRow).where(SessionRow.id.in_(ids)).order_by(SessionRow.id).with_for_update()
    )
    out: dict[uuid.UUID, tuple[SessionRow, list[KernelRow]]] = {
        session.id: (session, []) for session in rows.scalars()
    }
    kernels = await db.execute(
        select(KernelRow)
        .where(KernelRow.session_id.in_(list(out)))
        .order_by(KernelRow.session_id, KernelRow.id)
        .with_for_update()
    )
    for kernel in kernels.scalars():
        out[kernel.session_id][1].append(kernel)
    return out


async def _move_agent_slots(db: AsyncSession, agent_id: str | None, old: Slots, new: Slots) -> None:
    """The agent's occupied slots follow a kernel's allocation change (bumps revision)."""
    agent = None
    if agent_id is not None:
        agent = await db.get(AgentRow, agent_id, with_for_update=True)
    if agent is None:
        return
    moved = (Slots.from_wire(agent.occupied_slots) - old + new).to_wire()
    agent.occupied_slots = {k: v for k, v in moved.items() if not v.startswith("-")}
    agent.revision += 1


async def _apply_runtime(db: AsyncSession, kernel: KernelRow, runtime: RuntimeInfo) -> None:
    kernel.container_id = runtime.container_id or kernel.container_id
    kernel.kernel_host = runtime.kernel_host
    kernel.service_ports = runtime.service_ports
    kernel.host_ports = list(runtime.host_ports)
    kernel.attached_devices = runtime.attached_devices
    # The contract lets only device ids differ from what was asked; should the
    # amounts differ anyway, the agent's accounting moves with them so that the
    # release at the end gives back exactly what is counted.
    old, new = Slots.from_wire(kernel.occupied_slots), Slots.from_wire(runtime.allocated_slots)
    if runtime.allocated_slots and new != old:
        kernel.occupied_slots = new.to_wire()
        await _move_agent_slots(db, kernel.agent_id, old, new)


async def apply_report(
    db: AsyncSession,
    session: SessionRow,
    kernels: list[KernelRow],
    kernel: KernelRow,
    report: KernelReport,
    now: datetime,
) -> PendingEvents:
    """Apply one report to a kernel of a locked session (late/duplicate: no-op)."""
    if report.runtime is not None and kernel.status not in lifecycle.KERNEL_TERMINAL:
        await _apply_runtime(db, kernel, report.runtime)
    if not report.status:
        return PendingEvents()
    return await set_kernel_status(
        db,
        session,
        kernel,
        report.status,
        now,
        reason=report.reason,
        message=report.message,
        exit_code=report.exit_code,
        siblings=kernels,
    )


async def apply_kernel_report(
    db: AsyncSession, agent_id: str, report: KernelReport, now: datetime
) -> PendingEvents:
    """Apply an agent's report about a kernel it runs; reports about kernels the
    manager placed elsewhere (or never knew) are logged and dropped."""
    kernel_id = parse_uuid(report.kernel_id)
    session_id = (
        None
        if kernel_id is None
        else await db.scalar(select(KernelRow.session_id).where(KernelRow.id == kernel_id))
    )
    locked = None if session_id is None else await locked_session(db, session_id)
    kernel = None
    if locked is not None:
        kernel = next((k for k in locked[1] if k.id == kernel_id), None)
    if locked is None or kernel is None or kernel.agent_id != agent_id:
        log.warning(
            "agent %s reported kernel %s that the manager does not place there",
            agent_id,
            report.kernel_id[:64],
        )
        return PendingEvents()
    session, kernels = locked
    return await apply_report(db, session, kernels, kernel, report, now)


async def publish_quietly(redis: Redis, pending: PendingEvents) -> None:
    """Publish after commit; the database is the truth, so a Redis failure only
    costs watchers a notification."""
    try:
        await publish_all(redis, pending)
    except RedisError as exc:
        log.warning("could not publish %d session events: %s", len(pending.items), exc)


async def end_kernels(
    sessions: async_sessionmaker[AsyncSession],
    redis: Redis,
    kernels_by_session: Mapping[uuid.UUID, Iterable[uuid.UUID]],
    status: str,
    reason: str,
    now: datetime,
    *,
    message: str = "",
) -> int:
    """Move the given kernels to a terminal `status`, one transaction per session.

    Returns how many kernels changed (already-terminal ones do not count).
    """
    changed = 0
    for session_id, kernel_ids in kernels_by_session.items():
        wanted = set(kernel_ids)
        pending = PendingEvents()
        async with sessions() as db, db.begin():
            locked = await locked_session(db, session_id)
            if locked is None:
                continue
            session, kernels = locked
            for kernel in kernels:
                if kernel.id not in wanted or kernel.status in lifecycle.KERNEL_TERMINAL:
                    continue
                pending.extend(
                    await set_kernel_status(
                        db,
                        session,
                        kernel,
                        status,
                        now,
                        reason=reason,
                        message=message,
                        siblings=kernels,
                    )
                )
                changed += 1
        await publish_quietly(redis, pending)
    return changed
