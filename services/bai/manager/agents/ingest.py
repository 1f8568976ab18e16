"""Events from an agent's registry stream, applied once each.

Delivery is at least once: the agent re-sends what was not acked. Events are
applied and their highest seq stored in the same transaction, with the store
conditional on `last_acked_seq < first seq` for the agent's current boot_id;
when that finds no row the events were already applied (or belong to an old
boot) and the whole transaction is rolled back. Kernels never move backwards
(transitions.py), so even a replay that slipped through would change nothing.

A burst of queued events is applied in one transaction (`apply_burst`), with
the sessions it touches locked once, in id order; should the burst fail, its
events are applied one by one so that one bad event cannot block the others.
Storing the seq also refreshes `last_heartbeat_at`: any message on the stream
is a sign of life, and a heartbeat may wait behind many events.
"""

from __future__ import annotations

import logging
import uuid
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime

from redis.asyncio import Redis
from sqlalchemy import select, update
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from bai.manager.agents.images import ReportedImage, image_key, upsert_reported
from bai.manager.agents.kernel_updates import (
    KernelReport,
    apply_kernel_report,
    apply_report,
    lock_sessions,
    locked_session,
    parse_uuid,
    publish_quietly,
)
from bai.manager.db.compute import AgentRow, KernelRow, SessionRow
from bai.manager.sessions import lifecycle
from bai.manager.sessions.transitions import PendingEvents, set_session_result

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class KernelChanged:
    report: KernelReport


@dataclass(frozen=True)
class BatchFinished:
    session_id: str
    kernel_id: str
    # "success", "failure" or "undefined" (then derived from exit code and reason).
    result: str
    exit_code: int
    reason: str


@dataclass(frozen=True)
class ImageChanged:
    # "pulled" (present now) or "removed"; other pull progress is not stored.
    change: str
    image: ReportedImage


@dataclass(frozen=True)
class Noted:
    """Events the manager only logs (execution activity, agent errors, pull progress)."""

    kind: str
    detail: str
    level: int = logging.DEBUG


AgentEvent = KernelChanged | BatchFinished | ImageChanged | Noted


class _AlreadyApplied(Exception):
    pass


async def _apply_batch(
    db: AsyncSession, agent_id: str, event: BatchFinished, now: datetime
) -> PendingEvents:
    session_id = parse_uuid(event.session_id)
    locked = None if session_id is None else await locked_session(db, session_id)
    if locked is None or not any(k.agent_id == agent_id for k in locked[1]):
        log.warning("agent %s sent a batch result for an unknown session", agent_id)
        return PendingEvents()
    session, _kernels = locked
    result = event.result
    if result == "undefined":
        result = lifecycle.batch_result(event.exit_code, event.reason)
    return set_session_result(session, result, event.exit_code, now, event.reason)


async def _apply_image(db: AsyncSession, agent_id: str, event: ImageChanged) -> None:
    key = image_key(event.image.canonical, event.image.architecture)
    if event.change == "pulled":
        await upsert_reported(db, [event.image])
    agent = await db.get(AgentRow, agent_id, with_for_update=True)
    if agent is None:
        return
    held = set(agent.images)
    if event.change == "pulled":
        held.add(key)
    else:
        held.discard(key)
    agent.images = sorted(held)


async def _apply(
    db: AsyncSession, agent_id: str, event: AgentEvent, now: datetime
) -> PendingEvents:
    if isinstance(event, KernelChanged):
        return await apply_kernel_report(db, agent_id, event.report, now)
    if isinstance(event, BatchFinished):
        return await _apply_batch(db, agent_id, event, now)
    if isinstance(event, ImageChanged):
        await _apply_image(db, agent_id, event)
    else:
        log.log(event.level, "agent %s: %s: %s", agent_id, event.kind, event.detail[:2000])
    return PendingEvents()


async def _store_seq(
    db: AsyncSession, agent_id: str, boot_id: str, seq: int, now: datetime, first: int = 0
) -> None:
    """Store `seq` as acked, unless an event from `first` (default: seq) on was acked before."""
    stored = await db.execute(
        update(AgentRow)
        .where(
            AgentRow.id == agent_id,
            AgentRow.boot_id == boot_id,
            AgentRow.last_acked_seq < (first or seq),
        )
        .values(last_acked_seq=seq, last_heartbeat_at=now)
        .returning(AgentRow.id)
    )
    if stored.first() is None:
        raise _AlreadyApplied


Locked = dict[uuid.UUID, tuple[SessionRow, list[KernelRow]]]


async def _lock_burst(
    db: AsyncSession, events: Sequence[AgentEvent]
) -> tuple[Locked, dict[str, uuid.UUID]]:
    """Lock every session the burst's kernel and batch events name; returns them and
    the session of each reported kernel id."""
    kernel_ids = {
        kernel_id
        for e in events
        if isinstance(e, KernelChanged) and (kernel_id := parse_uuid(e.report.kernel_id))
    }
    session_of: dict[str, uuid.UUID] = {}
    if kernel_ids:
        rows = await db.execute(
            select(KernelRow.id, KernelRow.session_id).where(KernelRow.id.in_(kernel_ids))
        )
        session_of = {str(row.id): row.session_id for row in rows}
    session_ids = set(session_of.values())
    for e in events:
        if isinstance(e, BatchFinished) and (session_id := parse_uuid(e.session_id)):
            session_ids.add(session_id)
    return await lock_sessions(db, session_ids), session_of


async def _apply_locked(
    db: AsyncSession,
    agent_id: str,
    event: AgentEvent,
    locked: Locked,
    session_of: dict[str, uuid.UUID],
    now: datetime,
) -> PendingEvents:
    """`_apply` for an event whose sessions `_lock_burst` locked already."""
    if isinstance(event, KernelChanged):
        kernel_id = parse_uuid(event.report.kernel_id)
        found = locked.get(session_of.get(str(kernel_id), uuid.UUID(int=0)))
        kernel = None if found is None else next((k for k in found[1] if k.id == kernel_id), None)
        if found is None or kernel is None or kernel.agent_id != agent_id:
            log.warning(
                "agent %s reported kernel %s that the manager does not place there",
                agent_id,
                event.report.kernel_id[:64],
            )
            return PendingEvents()
        return await apply_report(db, found[0], found[1], kernel, event.report, now)
    return await _apply(db, agent_id, event, now)


async def apply_event(
    sessions: async_sessionmaker[AsyncSession],
    redis: Redis,
    agent_id: str,
    boot_id: str,
    seq: int,
    event: AgentEvent,
    now: datetime,
) -> bool:
    """Apply the event with this seq once; False when it had been applied before."""
    try:
        async with sessions() as db, db.begin():
            pending = await _apply(db, agent_id, event, now)
            await _store_seq(db, agent_id, boot_id, seq, now)
    except _AlreadyApplied:
        return False
    await publish_quietly(redis, pending)
    return True


async def apply_burst(
    sessions: async_sessionmaker[AsyncSession],
    redis: Redis,
    agent_id: str,
    boot_id: str,
    events: Sequence[tuple[int, AgentEvent]],
    now: datetime,
) -> bool:
    """Apply events with ascending seqs in one transaction; False (nothing applied)
    when one of them had been applied before. Errors leave nothing applied."""
    pending = PendingEvents()
    try:
        async with sessions() as db, db.begin():
            locked, session_of = await _lock_burst(db, [e for _, e in events])
            for _, event in events:
                pending.extend(await _apply_locked(db, agent_id, event, locked, session_of, now))
            await _store_seq(db, agent_id, boot_id, events[-1][0], now, first=events[0][0])
    except _AlreadyApplied:
        return False
    await publish_quietly(redis, pending)
    return True


async def skip_event(
    sessions: async_sessionmaker[AsyncSession],
    agent_id: str,
    boot_id: str,
    seq: int,
    now: datetime,
) -> None:
    """Store the seq of an event that could not be applied, so that it is not
    re-sent forever."""
    try:
        async with sessions() as db, db.begin():
            await _store_seq(db, agent_id, boot_id, seq, now)
    except _AlreadyApplied:
        pass
