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
from typing import Any

from sqlalchemy import select, update
from sqlalchemy.ext.asyncio import AsyncSession

from bai.common.slots import Slots, canonical
from bai.manager.db.compute import AgentRow, KernelRow, SessionRow
from bai.manager.scheduling import Diagnostic, Placement, Plan, SchedulingSnapshot
from bai.manager.sessions import transitions


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


async def _place(
    db: AsyncSession,
    session: SessionRow,
    placement: Placement,
    agents: Mapping[str, AgentRow],
    now: datetime,
) -> transitions.PendingEvents:
    kernel_ids = [uuid.UUID(k.kernel_id) for k in placement.kernels]
    rows = {
        str(k.id): k
        for k in (
            await db.execute(
                select(KernelRow).where(KernelRow.id.in_(kernel_ids)).with_for_update()
            )
        ).scalars()
    }
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
            await transitions.set_kernel_status(
                db, session, kernel, "SCHEDULED", now, siblings=siblings
            )
        )
    return out


async def apply_plan(
    db: AsyncSession, snapshot: SchedulingSnapshot, plan: Plan, now: datetime
) -> ApplyResult:
    result = ApplyResult()
    agents = await _lock_agents(db, plan, snapshot)
    sessions = await _lock_pending(db, plan)
    added: dict[str, Slots] = defaultdict(Slots)
    for placement in plan.placements:
        session = sessions.get(placement.session_id)
        if session is None or any(k.agent_id not in agents for k in placement.kernels):
            result.conflicts += 1
            continue
        for kp in placement.kernels:
            added[kp.agent_id] = added[kp.agent_id] + kp.slots
        result.events.extend(await _place(db, session, placement, agents, now))
        result.scheduled.append(session.id)
    for agent_id, slots in sorted(added.items()):
        agent = agents[agent_id]
        after = (Slots.from_wire(agent.occupied_slots) + slots).to_wire()
        changed = await db.execute(
            update(AgentRow)
            .where(AgentRow.id == agent_id, AgentRow.revision == agent.revision)
            .values(occupied_slots=after, revision=AgentRow.revision + 1)
            .execution_options(synchronize_session=False)
        )
        # Locked above with this revision: nobody can have changed it since.
        assert changed.rowcount == 1  # type: ignore[attr-defined]
    await _record_diagnostics(db, plan, now)
    return result


async def _record_diagnostics(db: AsyncSession, plan: Plan, now: datetime) -> None:
    for session_id, diagnostic in plan.diagnostics.items():
        await db.execute(
            update(SessionRow)
            .where(SessionRow.id == uuid.UUID(session_id), SessionRow.status == "PENDING")
            .values(
                scheduling_diagnostics=[diagnostic_json(diagnostic, now)],
                scheduling_attempts=SessionRow.scheduling_attempts + 1,
            )
            .execution_options(synchronize_session=False)
        )
