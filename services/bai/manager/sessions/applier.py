"""Write a scheduling Plan in one transaction, with optimistic checks.

Several manager replicas may schedule the same group at once. Correctness
rests on two checks made under row locks, not on any lock between replicas:
- an agent is updated only if its revision is still the one the snapshot
  saw (any other change of its occupied slots bumped it); a placement that
  touches a changed agent is skipped and retried in the next round;
- a session moves to SCHEDULED only if it is still PENDING.
"""

from __future__ import annotations

import uuid
from collections import defaultdict
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, cast

from sqlalchemy import Table, bindparam, select, update
from sqlalchemy.ext.asyncio import AsyncSession

from bai.common.slots import Slots, canonical
from bai.manager.db.compute import AgentRow, KernelRow, SessionRow
from bai.manager.scheduling import Diagnostic, Placement, Plan, SchedulingSnapshot
from bai.manager.sessions import transitions

_AGENTS = cast(Table, AgentRow.__table__)
_SESSIONS = cast(Table, SessionRow.__table__)
# Core executemany statements: one round trip for all the rows of a round.
_OCCUPY = (
    update(_AGENTS)
    .where(_AGENTS.c.id == bindparam("agent_id"))
    .values(occupied_slots=bindparam("occupied"), revision=_AGENTS.c.revision + 1)
)
_DIAGNOSE = (
    update(_SESSIONS)
    .where(_SESSIONS.c.id == bindparam("session_id"), _SESSIONS.c.status == "PENDING")
    .values(
        scheduling_diagnostics=bindparam("diagnostics"),
        scheduling_attempts=_SESSIONS.c.scheduling_attempts + 1,
    )
)


@dataclass
class ApplyResult:
    scheduled: list[uuid.UUID] = field(default_factory=list)
    # Placements dropped because an agent or the session changed meanwhile.
    conflicts: int = 0
    events: transitions.PendingEvents = field(default_factory=transitions.PendingEvents)


def diagnostic_json(diagnostic: Diagnostic, now: datetime) -> dict[str, Any]:
    return {
        "check": diagnostic.check.name,
        "message": diagnostic.message,
        "shortfalls": [
            {
                "slot": s.slot,
                "requested": canonical(s.requested),
                "available": canonical(s.available),
            }
            for s in diagnostic.shortfalls
        ],
        "agent_id": diagnostic.agent_id,
        "checked_at": now.isoformat(),
    }


async def _lock_agents(
    db: AsyncSession, plan: Plan, snapshot: SchedulingSnapshot
) -> dict[str, AgentRow]:
    """Lock the plan's agents (in id order: no deadlock between replicas); keep the
    ones whose revision is unchanged and that can still take work."""
    seen = {a.id: a.revision for a in snapshot.agents}
    ids = sorted({k.agent_id for p in plan.placements for k in p.kernels})
    if not ids:
        return {}
    query = select(AgentRow).where(AgentRow.id.in_(ids)).order_by(AgentRow.id).with_for_update()
    rows = (await db.execute(query)).scalars()
    return {
        row.id: row
        for row in rows
        if row.revision == seen.get(row.id) and row.status == "ALIVE" and row.schedulable
    }


async def _lock_pending(db: AsyncSession, plan: Plan) -> dict[str, SessionRow]:
    ids = [uuid.UUID(p.session_id) for p in plan.placements]
    if not ids:
        return {}
    query = (
        select(SessionRow)
        .where(SessionRow.id.in_(ids), SessionRow.status == "PENDING")
        .order_by(SessionRow.id)
        .with_for_update(skip_locked=True)
    )
    return {str(row.id): row for row in (await db.execute(query)).scalars()}


async def _lock_kernels(
    db: AsyncSession, plan: Plan, sessions: Mapping[str, SessionRow]
) -> dict[str, KernelRow]:
    """The kernels of the placements whose sessions are locked, in one statement
    (another replica may hold the others: never wait for those)."""
    ids = sorted(
        uuid.UUID(k.kernel_id)
        for p in plan.placements
        if p.session_id in sessions
        for k in p.kernels
    )
    if not ids:
        return {}
    query = select(KernelRow).where(KernelRow.id.in_(ids)).order_by(KernelRow.id).with_for_update()
    return {str(row.id): row for row in (await db.execute(query)).scalars()}


def _place(
    session: SessionRow,
    placement: Placement,
    kernels: Mapping[str, KernelRow],
    agents: Mapping[str, AgentRow],
    now: datetime,
) -> transitions.PendingEvents:
    """Set the placement on the loaded rows; the flush writes them all at once."""
    rows = {k.kernel_id: kernels[k.kernel_id] for k in placement.kernels}
    out = transitions.PendingEvents()
    ranks: dict[str, int] = defaultdict(int)
    occupied = Slots()
    for kp in placement.kernels:
        kernel = rows[kp.kernel_id]
        kernel.agent_id = kp.agent_id
        kernel.agent_addr = agents[kp.agent_id].addr
        kernel.occupied_slots = kp.slots.to_wire()
        kernel.local_rank = ranks[kp.agent_id]
        ranks[kp.agent_id] += 1
        occupied = occupied + kp.slots
    session.occupied_slots = occupied.to_wire()
    session.agent_ids = sorted(ranks)
    siblings = list(rows.values())
    for kernel in siblings:
        out.extend(
            transitions.change_kernel_status(session, kernel, "SCHEDULED", now, siblings=siblings)
        )
    return out


async def apply_plan(
    db: AsyncSession, snapshot: SchedulingSnapshot, plan: Plan, now: datetime
) -> ApplyResult:
    result = ApplyResult()
    agents = await _lock_agents(db, plan, snapshot)
    sessions = await _lock_pending(db, plan)
    kernels = await _lock_kernels(db, plan, sessions)
    added: dict[str, Slots] = defaultdict(Slots)
    for placement in plan.placements:
        session = sessions.get(placement.session_id)
        if session is None or any(
            k.agent_id not in agents or k.kernel_id not in kernels for k in placement.kernels
        ):
            result.conflicts += 1
            continue
        for kp in placement.kernels:
            added[kp.agent_id] = added[kp.agent_id] + kp.slots
        result.events.extend(_place(session, placement, kernels, agents, now))
        result.scheduled.append(session.id)
    if added:
        # Locked above at the revisions the snapshot saw: nobody can change them now.
        await db.execute(
            _OCCUPY,
            [
                {
                    "agent_id": agent_id,
                    "occupied": (
                        Slots.from_wire(agents[agent_id].occupied_slots) + slots
                    ).to_wire(),
                }
                for agent_id, slots in sorted(added.items())
            ],
        )
    await _record_diagnostics(db, plan, now)
    return result


async def _record_diagnostics(db: AsyncSession, plan: Plan, now: datetime) -> None:
    if not plan.diagnostics:
        return
    await db.execute(
        _DIAGNOSE,
        [
            {"session_id": uuid.UUID(session_id), "diagnostics": [diagnostic_json(d, now)]}
            for session_id, d in plan.diagnostics.items()
        ],
    )
