"""Agent registration, heartbeats, shutdown and kernel re-adoption.

Registration upserts the agent row (ALIVE, or RESTARTING when it comes back
with a new boot_id while the manager still counts kernels on it; its first
heartbeat makes it ALIVE), refreshes the image catalogue, and reconciles the
kernels the agent lists with the manager's (`plan_readoption`, pure). The
agent row is written in its own transaction, the kernels afterwards one
session at a time (see kernel_updates for the lock order).
"""

from __future__ import annotations

import uuid
from collections import defaultdict
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from redis.asyncio import Redis
from sqlalchemy import case, or_, select, update
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from bai.common.errors import PermissionDenied
from bai.manager.agents.images import ReportedImage, image_keys, upsert_reported
from bai.manager.agents.kernel_updates import (
    KernelReport,
    apply_report,
    end_kernels,
    locked_session,
    parse_uuid,
    publish_quietly,
)
from bai.manager.db.compute import AgentRow, KernelRow
from bai.manager.db.policies import ScalingGroupRow
from bai.manager.sessions import lifecycle
from bai.manager.sessions.transitions import PendingEvents

# Kernels the agent has not been asked to create yet: not missing when unlisted.
NOT_YET_ON_AGENT = frozenset({"PENDING", "RESERVED", "SCHEDULED"})
# Agent statuses that heartbeat (the liveness sweeper watches these).
CONNECTED = ("ALIVE", "RESTARTING")


@dataclass(frozen=True)
class Registration:
    agent_id: str
    boot_id: str
    addr: str
    public_host: str
    region: str
    scaling_group: str
    architecture: str
    version: str
    available_slots: dict[str, str]
    slot_types: dict[str, Any]
    hardware: dict[str, Any]
    compute_plugins: dict[str, Any]
    kernels: list[KernelReport]
    images: list[ReportedImage]
    auto_terminate_abusing_kernel: bool = False


@dataclass(frozen=True)
class ManagedKernel:
    """The manager's view of a kernel, for re-adoption."""

    kernel_id: uuid.UUID
    session_id: uuid.UUID
    status: str
    agent_id: str | None


@dataclass(frozen=True)
class ReadoptionPlan:
    # Listed by the agent and live on it in the manager: take the agent's news.
    adopt: tuple[tuple[KernelReport, ManagedKernel], ...]
    # Listed but unknown, finished, or placed elsewhere: the agent destroys them.
    unknown: tuple[str, ...]
    # Live on this agent in the manager but not listed: the container is gone.
    missing: tuple[ManagedKernel, ...]


@dataclass(frozen=True)
class Registered:
    scaling_group: str
    status: str
    last_acked_seq: int
    unknown_kernel_ids: tuple[str, ...]


def plan_readoption(
    agent_id: str, listed: Sequence[KernelReport], known: Mapping[uuid.UUID, ManagedKernel]
) -> ReadoptionPlan:
    """Match the agent's kernels against the manager's (`known`: every kernel the
    agent listed plus the manager's live kernels on this agent)."""
    adopt: list[tuple[KernelReport, ManagedKernel]] = []
    unknown: list[str] = []
    seen: set[uuid.UUID] = set()
    for report in listed:
        kernel_id = parse_uuid(report.kernel_id)
        managed = None if kernel_id is None else known.get(kernel_id)
        if managed is not None and managed.kernel_id in seen:
            continue
        if (
            managed is None
            or managed.agent_id != agent_id
            or managed.status in lifecycle.KERNEL_TERMINAL
        ):
            unknown.append(report.kernel_id)
            continue
        seen.add(managed.kernel_id)
        adopt.append((report, managed))
    missing = tuple(
        m
        for m in known.values()
        if m.agent_id == agent_id
        and m.kernel_id not in seen
        and m.status not in lifecycle.KERNEL_TERMINAL
        and m.status not in NOT_YET_ON_AGENT
    )
    return ReadoptionPlan(tuple(adopt), tuple(dict.fromkeys(unknown)), missing)


def status_on_register(stored_boot_id: str | None, boot_id: str, kernels_live: bool) -> str:
    """RESTARTING when a known agent restarted while the manager counts kernels on it."""
    restarted = bool(stored_boot_id) and stored_boot_id != boot_id
    return "RESTARTING" if restarted and kernels_live else "ALIVE"


def acked_seq_on_register(stored_boot_id: str | None, boot_id: str, stored_seq: int) -> int:
    """Event seqs count per boot_id: a new boot starts over."""
    return stored_seq if stored_boot_id == boot_id else 0


def _rejected(agent_id: str, message: str) -> PermissionDenied:
    return PermissionDenied(message, reason="AGENT_REJECTED", metadata={"agent_id": agent_id})


async def _known_kernels(
    db: AsyncSession, agent_id: str, listed: Sequence[KernelReport]
) -> dict[uuid.UUID, ManagedKernel]:
    ids = [k for k in (parse_uuid(r.kernel_id) for r in listed) if k is not None]
    live_here = (KernelRow.agent_id == agent_id) & KernelRow.status.not_in(
        lifecycle.KERNEL_TERMINAL
    )
    query = select(KernelRow.id, KernelRow.session_id, KernelRow.status, KernelRow.agent_id)
    rows = await db.execute(query.where(or_(live_here, KernelRow.id.in_(ids))))
    return {r.id: ManagedKernel(r.id, r.session_id, r.status, r.agent_id) for r in rows}


async def _readopt(
    sessions: async_sessionmaker[AsyncSession],
    redis: Redis,
    agent_id: str,
    plan: ReadoptionPlan,
    now: datetime,
) -> None:
    by_session: dict[uuid.UUID, list[KernelReport]] = defaultdict(list)
    for report, managed in plan.adopt:
        by_session[managed.session_id].append(report)
    for session_id, reports in by_session.items():
        pending = PendingEvents()
        async with sessions() as db, db.begin():
            locked = await locked_session(db, session_id)
            if locked is None:
                continue
            session, kernels = locked
            for report in reports:
                kernel_id = parse_uuid(report.kernel_id)
                kernel = next((k for k in kernels if k.id == kernel_id), None)
                if kernel is not None and kernel.agent_id == agent_id:
                    pending.extend(await apply_report(db, session, kernels, kernel, report, now))
        await publish_quietly(redis, pending)
    missing: dict[uuid.UUID, list[uuid.UUID]] = defaultdict(list)
    for managed in plan.missing:
        missing[managed.session_id].append(managed.kernel_id)
    await end_kernels(
        sessions,
        redis,
        missing,
        "TERMINATED",
        "container-not-found",
        now,
        message="the agent does not have this kernel",
    )


async def reconcile_kernels(
    sessions: async_sessionmaker[AsyncSession],
    redis: Redis,
    agent_id: str,
    listed: Sequence[KernelReport],
    now: datetime,
) -> tuple[str, ...]:
    """Re-adopt what the agent lists (registration, resync snapshots); returns the
    ids the agent listed that the manager does not know."""
    async with sessions() as db:
        known = await _known_kernels(db, agent_id, listed)
    plan = plan_readoption(agent_id, listed, known)
    await _readopt(sessions, redis, agent_id, plan, now)
    return plan.unknown


async def register(
    sessions: async_sessionmaker[AsyncSession],
    redis: Redis,
    registration: Registration,
    manager_id: str,
    now: datetime,
) -> Registered:
    """Upsert the agent and re-adopt its kernels. Raises AGENT_REJECTED."""
    r = registration
    async with sessions() as db, db.begin():
        row = await db.get(AgentRow, r.agent_id, with_for_update=True)
        # Once known, the manager's record of the group is authoritative
        # (admins move agents with UpdateAgent).
        group_name = row.scaling_group if row is not None else r.scaling_group
        group = await db.get(ScalingGroupRow, group_name) if group_name else None
        if group is None or not group.is_active:
            raise _rejected(r.agent_id, f"scaling group {group_name!r} is unknown or inactive")
        live = await db.scalar(
            select(KernelRow.id)
            .where(
                KernelRow.agent_id == r.agent_id,
                KernelRow.status.not_in(lifecycle.KERNEL_TERMINAL | NOT_YET_ON_AGENT),
            )
            .limit(1)
        )
        stored_boot = row.boot_id if row is not None else None
        status = status_on_register(stored_boot, r.boot_id, live is not None)
        seq = acked_seq_on_register(stored_boot, r.boot_id, row.last_acked_seq if row else 0)
        values: dict[str, Any] = {
            "region": r.region,
            "addr": r.addr,
            "public_host": r.public_host,
            "architecture": r.architecture,
            "version": r.version,
            "boot_id": r.boot_id,
            "last_acked_seq": seq,
            "manager_id": manager_id,
            "available_slots": r.available_slots,
            "slot_types": r.slot_types,
            "hardware_info": r.hardware,
            "compute_plugins": r.compute_plugins,
            "images": image_keys(r.images),
            "auto_terminate_abusing_kernel": r.auto_terminate_abusing_kernel,
            "last_heartbeat_at": now,
            "lost_at": None,
        }
        if row is None:
            db.add(
                AgentRow(
                    id=r.agent_id,
                    scaling_group=group_name,
                    status=status,
                    status_changed_at=now,
                    **values,
                )
            )
        else:
            if row.status != status:
                values["status_changed_at"] = now
            values["status"] = status
            for key, value in values.items():
                setattr(row, key, value)
        await upsert_reported(db, r.images)
    unknown = await reconcile_kernels(sessions, redis, r.agent_id, r.kernels, now)
    return Registered(group_name, status, seq, unknown)


async def heartbeat(
    sessions: async_sessionmaker[AsyncSession],
    agent_id: str,
    boot_id: str,
    manager_id: str,
    available_slots: dict[str, str],
    compute_plugins: dict[str, Any] | None,
    now: datetime,
) -> bool:
    """Record a heartbeat; False when the agent is no longer ours to keep alive
    (marked LOST meanwhile, re-registered elsewhere): it must register again."""
    values: dict[str, Any] = {
        "last_heartbeat_at": now,
        "status": "ALIVE",
        "status_changed_at": case(
            (AgentRow.status == "ALIVE", AgentRow.status_changed_at), else_=now
        ),
    }
    # Empty means "not reported this time", never "no capacity".
    if available_slots:
        values["available_slots"] = available_slots
    if compute_plugins:
        values["compute_plugins"] = compute_plugins
    async with sessions() as db, db.begin():
        result = await db.execute(
            update(AgentRow)
            .where(
                AgentRow.id == agent_id,
                AgentRow.boot_id == boot_id,
                AgentRow.manager_id == manager_id,
                AgentRow.status.in_(CONNECTED),
            )
            .values(values)
            .returning(AgentRow.id)
        )
        return result.first() is not None


async def shutdown(
    sessions: async_sessionmaker[AsyncSession], agent_id: str, boot_id: str, now: datetime
) -> None:
    """A clean agent shutdown: TERMINATED; its kernels stay as they are."""
    async with sessions() as db, db.begin():
        await db.execute(
            update(AgentRow)
            .where(AgentRow.id == agent_id, AgentRow.boot_id == boot_id)
            .values(status="TERMINATED", status_changed_at=now, lost_at=now)
        )


async def apply_snapshot(
    sessions: async_sessionmaker[AsyncSession],
    redis: Redis,
    agent_id: str,
    kernels: Sequence[KernelReport],
    images: Sequence[ReportedImage],
    available_slots: dict[str, str],
    now: datetime,
) -> tuple[str, ...]:
    """A full KernelSnapshot (answer to resync): images, capacity and kernels as the
    agent has them; returns the kernels the manager does not know."""
    async with sessions() as db, db.begin():
        await upsert_reported(db, images)
        values: dict[str, Any] = {"images": image_keys(images)}
        if available_slots:
            values["available_slots"] = available_slots
        await db.execute(update(AgentRow).where(AgentRow.id == agent_id).values(values))
    return await reconcile_kernels(sessions, redis, agent_id, kernels, now)
