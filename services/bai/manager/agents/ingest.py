"""Events from an agent's registry stream, applied once each.

Delivery is at least once: the agent re-sends what was not acked. Each event
is applied and its seq stored in the same transaction, with the store
conditional on `last_acked_seq < seq` for the agent's current boot_id; when
that finds no row the event was already applied (or belongs to an old boot)
and the whole transaction is rolled back. Kernels never move backwards
(transitions.py), so even a replay that slipped through would change nothing.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from datetime import datetime

from redis.asyncio import Redis
from sqlalchemy import update
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from bai.manager.agents.images import ReportedImage, image_key, upsert_reported
from bai.manager.agents.kernel_updates import (
    KernelReport,
    apply_kernel_report,
    locked_session,
    parse_uuid,
    publish_quietly,
)
from bai.manager.db.compute import AgentRow
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


async def _store_seq(db: AsyncSession, agent_id: str, boot_id: str, seq: int) -> None:
    stored = await db.execute(
        update(AgentRow)
        .where(
            AgentRow.id == agent_id,
            AgentRow.boot_id == boot_id,
            AgentRow.last_acked_seq < seq,
        )
        .values(last_acked_seq=seq)
        .returning(AgentRow.id)
    )
    if stored.first() is None:
        raise _AlreadyApplied


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
            await _store_seq(db, agent_id, boot_id, seq)
    except _AlreadyApplied:
        return False
    await publish_quietly(redis, pending)
    return True


async def skip_event(
    sessions: async_sessionmaker[AsyncSession], agent_id: str, boot_id: str, seq: int
) -> None:
    """Store the seq of an event that could not be applied, so that it is not
    re-sent forever."""
    try:
        async with sessions() as db, db.begin():
            await _store_seq(db, agent_id, boot_id, seq)
    except _AlreadyApplied:
        pass
