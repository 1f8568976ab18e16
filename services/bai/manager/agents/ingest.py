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
Bursts of several agents may share a transaction (`apply_bursts`, fed by
event_batcher.py), their agent rows then locked in id order too.
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
from sqlalchemy import BigInteger, String, column, select, update, values
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
    not_live: set[str],
) -> PendingEvents:
    """`_apply` for an event whose sessions `_lock_burst` locked already; a reported
    kernel that is not live on the agent afterwards goes into `not_live`."""
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
            if kernel_id is not None:
                not_live.add(event.report.kernel_id)
            return PendingEvents()
        applied = await apply_report(db, found[0], found[1], kernel, event.report, now)
        if kernel.status in lifecycle.KERNEL_TERMINAL:
            not_live.add(event.report.kernel_id)
        return applied
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


@dataclass(frozen=True)
class Burst:
    """Events of one agent with ascending seqs, not yet applied."""

    agent_id: str
    boot_id: str
    events: Sequence[tuple[int, AgentEvent]]


async def _store_seqs(db: AsyncSession, bursts: Sequence[Burst], now: datetime) -> None:
    """`_store_seq` for every burst in one statement; _AlreadyApplied unless each
    agent's row took its burst's last seq."""
    if len(bursts) == 1:
        burst = bursts[0]
        await _store_seq(
            db, burst.agent_id, burst.boot_id, burst.events[-1][0], now, first=burst.events[0][0]
        )
        return
    acked = values(
        column("id", String),
        column("boot_id", String),
        column("seq", BigInteger),
        column("first", BigInteger),
        name="acked",
    ).data([(b.agent_id, b.boot_id, b.events[-1][0], b.events[0][0]) for b in bursts])
    stored = await db.execute(
        update(AgentRow)
        .where(
            AgentRow.id == acked.c.id,
            AgentRow.boot_id == acked.c.boot_id,
            AgentRow.last_acked_seq < acked.c.first,
        )
        .values(last_acked_seq=acked.c.seq, last_heartbeat_at=now)
        .returning(AgentRow.id)
        .execution_options(synchronize_session=False)
    )
    if len(stored.all()) != len(bursts):
        raise _AlreadyApplied


async def _lock_agents(db: AsyncSession, agent_ids: set[str]) -> None:
    """Lock the agent rows a batch will update, in id order as the scheduler's applier
    does: updated by one statement (seqs) or as events come, they would be locked in
    no particular order, and two transactions could each wait for the other."""
    await db.execute(
        select(AgentRow.id)
        .where(AgentRow.id.in_(sorted(agent_ids)))
        .order_by(AgentRow.id)
        .with_for_update()
    )


async def apply_bursts(
    sessions: async_sessionmaker[AsyncSession],
    redis: Redis,
    bursts: Sequence[Burst],
    now: datetime,
) -> list[set[str]] | None:
    """Apply bursts of several agents in one transaction (group commit); None (nothing
    applied) when one of them had been applied before. Errors leave nothing applied.

    Returns, per burst, the kernel ids it reported that are not live on its agent
    afterwards (unknown to the manager, placed elsewhere, or ended)."""
    pending = PendingEvents()
    not_live: list[set[str]] = [set() for _ in bursts]
    try:
        async with sessions() as db, db.begin():
            every = [e for burst in bursts for _, e in burst.events]
            locked, session_of = await _lock_burst(db, every)
            if len(bursts) > 1:
                await _lock_agents(db, {burst.agent_id for burst in bursts})
            for burst, dead in zip(bursts, not_live, strict=True):
                for _, event in burst.events:
                    pending.extend(
                        await _apply_locked(
                            db, burst.agent_id, event, locked, session_of, now, dead
                        )
                    )
            await _store_seqs(db, bursts, now)
    except _AlreadyApplied:
        return None
    await publish_quietly(redis, pending)
    return not_live


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
    burst = Burst(agent_id, boot_id, events)
    return await apply_bursts(sessions, redis, [burst], now) is not None


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
