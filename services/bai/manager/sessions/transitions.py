"""Apply status changes to kernel and session rows, inside the caller's transaction.

Every status change of a kernel or a session goes through here, so that the
history, slot accounting and the event feed stay consistent:
- a kernel that reaches a terminal status gives its slots back to its agent
  (once: terminal statuses are final);
- the session's status is re-derived from its kernels;
- each change yields a `SessionEvent` for the feed. Callers publish the
  returned events with `publish_all` after their transaction commits.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import datetime

from google.protobuf.timestamp_pb2 import Timestamp
from redis.asyncio import Redis
from sqlalchemy import select, update
from sqlalchemy.ext.asyncio import AsyncSession

from bai.api.manager.v1 import session_pb2
from bai.common.slots import Slots
from bai.manager.db.compute import AgentRow, KernelRow, SessionRow
from bai.manager.sessions import events, lifecycle, names

_SESSION_EVENT = {
    "PENDING": session_pb2.SESSION_EVENT_TYPE_SESSION_ENQUEUED,
    "SCHEDULED": session_pb2.SESSION_EVENT_TYPE_SESSION_SCHEDULED,
    "PREPARING": session_pb2.SESSION_EVENT_TYPE_SESSION_PREPARING,
    "PULLING": session_pb2.SESSION_EVENT_TYPE_SESSION_PULLING,
    "CREATING": session_pb2.SESSION_EVENT_TYPE_SESSION_CREATING,
    "RUNNING": session_pb2.SESSION_EVENT_TYPE_SESSION_STARTED,
    "CANCELLED": session_pb2.SESSION_EVENT_TYPE_SESSION_CANCELLED,
    "TERMINATING": session_pb2.SESSION_EVENT_TYPE_SESSION_TERMINATING,
    "TERMINATED": session_pb2.SESSION_EVENT_TYPE_SESSION_TERMINATED,
}
_KERNEL_EVENT = {
    "PREPARING": session_pb2.SESSION_EVENT_TYPE_KERNEL_PREPARING,
    "PULLING": session_pb2.SESSION_EVENT_TYPE_KERNEL_PULLING,
    "CREATING": session_pb2.SESSION_EVENT_TYPE_KERNEL_CREATING,
    "RUNNING": session_pb2.SESSION_EVENT_TYPE_KERNEL_STARTED,
    "CANCELLED": session_pb2.SESSION_EVENT_TYPE_KERNEL_CANCELLED,
    "TERMINATING": session_pb2.SESSION_EVENT_TYPE_KERNEL_TERMINATING,
    "TERMINATED": session_pb2.SESSION_EVENT_TYPE_KERNEL_TERMINATED,
    "ERROR": session_pb2.SESSION_EVENT_TYPE_KERNEL_TERMINATED,
}


@dataclass
class PendingEvents:
    """Events produced inside a transaction, published after it commits."""

    items: list[tuple[session_pb2.SessionEvent, events.EventScope]] = field(default_factory=list)

    def extend(self, other: PendingEvents) -> None:
        self.items.extend(other.items)


def _ts(now: datetime) -> Timestamp:
    ts = Timestamp()
    ts.FromDatetime(now)
    return ts


def scope_of(session: SessionRow) -> events.EventScope:
    return events.EventScope(
        session_id=str(session.id),
        access_key=session.access_key,
        user_id=str(session.user_id),
        project_id=str(session.project_id),
        domain_name=session.domain_name,
    )


def _event(
    session: SessionRow, event_type: int, now: datetime, reason: str, message: str
) -> session_pb2.SessionEvent:
    return session_pb2.SessionEvent(
        type=event_type,  # type: ignore[arg-type]
        time=_ts(now),
        session_id=str(session.id),
        session_name=session.name,
        owner_access_key=session.access_key,
        project_id=str(session.project_id),
        session_status=names.session_status_value(session.status),  # type: ignore[arg-type]
        reason=names.reason_value(reason),  # type: ignore[arg-type]
        message=message,
    )


def set_session_status(
    session: SessionRow, status: str, now: datetime, *, reason: str = "", message: str = ""
) -> PendingEvents:
    """Move the session row to `status` (no-op when already there or terminal)."""
    out = PendingEvents()
    if session.status == status or session.status in lifecycle.SESSION_TERMINAL:
        return out
    session.status = status
    session.status_reason = reason
    session.status_info = message[:256]
    session.status_changed_at = now
    session.transition_retries = 0
    session.status_history = lifecycle.appended(
        session.status_history, lifecycle.history_entry(status, now, reason, message)
    )
    if status == "RUNNING" and session.started_at is None:
        session.started_at = now
    if status in lifecycle.SESSION_TERMINAL:
        session.terminated_at = now
    if status != "PENDING":
        session.scheduling_diagnostics = []
    event_type = _SESSION_EVENT.get(status, session_pb2.SESSION_EVENT_TYPE_SESSION_STATUS_CHANGED)
    out.items.append((_event(session, event_type, now, reason, message), scope_of(session)))
    return out


def set_session_result(
    session: SessionRow, result: str, exit_code: int | None, now: datetime, reason: str
) -> PendingEvents:
    """Record a batch result once (success/failure event)."""
    out = PendingEvents()
    if session.result != "undefined":
        return out
    session.result = result
    session.exit_code = exit_code
    event_type = (
        session_pb2.SESSION_EVENT_TYPE_SESSION_SUCCESS
        if result == "success"
        else session_pb2.SESSION_EVENT_TYPE_SESSION_FAILURE
    )
    event = _event(session, event_type, now, reason, "")
    event.result = names.result_value(result)  # type: ignore[assignment]
    if exit_code is not None:
        event.exit_code = exit_code
    out.items.append((event, scope_of(session)))
    return out


async def release_agent_slots(db: AsyncSession, agent_id: str | None, slots: Slots) -> None:
    """Give a finished kernel's slots back to its agent (bumps the agent's revision)."""
    if agent_id is None or not slots:
        return
    agent = (
        await db.execute(select(AgentRow).where(AgentRow.id == agent_id).with_for_update())
    ).scalar_one_or_none()
    if agent is None:
        return
    left = (Slots.from_wire(agent.occupied_slots) - slots).to_wire()
    # Never negative, even if an earlier bug double-released.
    clean = {k: v for k, v in left.items() if not v.startswith("-")}
    await db.execute(
        update(AgentRow)
        .where(AgentRow.id == agent_id)
        .values(occupied_slots=clean, revision=AgentRow.revision + 1)
    )


def change_kernel_status(
    session: SessionRow,
    kernel: KernelRow,
    status: str,
    now: datetime,
    *,
    reason: str = "",
    message: str = "",
    exit_code: int | None = None,
    siblings: Sequence[KernelRow] = (),
) -> PendingEvents:
    """`set_kernel_status` on the loaded rows alone, for changes to a status that is
    not terminal (those give slots back to the agent, which takes a query)."""
    out = PendingEvents()
    if not lifecycle.kernel_transition_allowed(kernel.status, status):
        return out
    kernel.status = status
    kernel.status_reason = reason
    kernel.status_info = message[:256]
    kernel.status_changed_at = now
    kernel.status_history = lifecycle.appended(
        kernel.status_history, lifecycle.history_entry(status, now, reason, message)
    )
    if exit_code is not None:
        kernel.exit_code = exit_code
    if status == "RUNNING" and kernel.started_at is None:
        kernel.started_at = now
    if status in lifecycle.KERNEL_TERMINAL:
        kernel.terminated_at = now
    event_type = _KERNEL_EVENT.get(status)
    if event_type is not None:
        event = _event(session, event_type, now, reason, message)
        event.kernel_id = str(kernel.id)
        event.cluster_role = kernel.cluster_role
        event.kernel_status = names.kernel_status_value(status)  # type: ignore[assignment]
        if exit_code is not None:
            event.exit_code = exit_code
        out.items.append((event, scope_of(session)))
    statuses = [kernel.status, *(k.status for k in siblings if k.id != kernel.id)]
    derived = lifecycle.derive_session_status(statuses, session.started_at is not None)
    if kernel.cluster_role == "main" and exit_code is not None:
        session.exit_code = exit_code
    if derived != session.status and not (
        session.status == "TERMINATING" and derived not in lifecycle.SESSION_TERMINAL
    ):
        out.extend(set_session_status(session, derived, now, reason=reason, message=message))
    return out


async def set_kernel_status(
    db: AsyncSession,
    session: SessionRow,
    kernel: KernelRow,
    status: str,
    now: datetime,
    *,
    reason: str = "",
    message: str = "",
    exit_code: int | None = None,
    siblings: Sequence[KernelRow] = (),
) -> PendingEvents:
    """Apply one kernel status change and re-derive the session's status.

    `siblings` are the session's other kernels (loaded by the caller, locked
    with the session). Late or duplicate changes are ignored. A kernel that
    ends gives its slots back to its agent.
    """
    was_terminal = kernel.status in lifecycle.KERNEL_TERMINAL
    out = change_kernel_status(
        session,
        kernel,
        status,
        now,
        reason=reason,
        message=message,
        exit_code=exit_code,
        siblings=siblings,
    )
    if not was_terminal and kernel.status in lifecycle.KERNEL_TERMINAL:
        await release_agent_slots(db, kernel.agent_id, Slots.from_wire(kernel.occupied_slots))
    return out


async def publish_all(redis: Redis, pending: PendingEvents) -> None:
    await events.publish_many(redis, pending.items)
