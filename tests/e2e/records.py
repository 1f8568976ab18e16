"""The manager's records of agents, sessions and kernels, read from the database,
and the scaling groups the e2e agents serve."""

from __future__ import annotations

import uuid

from sqlalchemy import select

from bai.manager.db.compute import AgentRow, KernelRow, SessionRow
from bai.manager.db.policies import ScalingGroupForDomainRow, ScalingGroupRow
from tests.e2e.waits import DEADLINE, eventually
from tests.manager.fixtures import ManagerHandle, unique


async def make_group(manager: ManagerHandle) -> str:
    """A scaling group of the default domain that only our agent serves."""
    name = unique("e2e")
    async with manager.ctx.sessions() as db, db.begin():
        db.add(
            ScalingGroupRow(
                name=name,
                scheduler="fifo",
                scheduler_opts={
                    "allowed_session_types": ["interactive", "batch"],
                    "agent_selection_strategy": "concentrated",
                },
            )
        )
        await db.flush()
        db.add(ScalingGroupForDomainRow(scaling_group=name, domain_name="default"))
    return name


async def agent_row(manager: ManagerHandle, agent_id: str) -> AgentRow | None:
    async with manager.ctx.sessions() as db:
        return await db.get(AgentRow, agent_id)


async def occupied(manager: ManagerHandle, agent_id: str) -> dict[str, str]:
    row = await agent_row(manager, agent_id)
    assert row is not None, f"agent {agent_id} is not registered"
    return {k: v for k, v in row.occupied_slots.items() if v not in ("0", "")}


async def session_row(manager: ManagerHandle, session_id: str) -> SessionRow:
    async with manager.ctx.sessions() as db:
        row = await db.get(SessionRow, uuid.UUID(session_id))
    assert row is not None, f"no session {session_id}"
    return row


async def kernel_rows(manager: ManagerHandle, session_id: str) -> list[KernelRow]:
    async with manager.ctx.sessions() as db:
        rows = await db.execute(
            select(KernelRow).where(KernelRow.session_id == uuid.UUID(session_id))
        )
        return list(rows.scalars())


async def wait_session(
    manager: ManagerHandle, session_id: str, wanted: set[str], limit: float = DEADLINE
) -> SessionRow:
    async def reached() -> SessionRow | None:
        row = await session_row(manager, session_id)
        return row if row.status in wanted else None

    try:
        row: SessionRow = await eventually(
            reached, f"session {session_id} reaches {sorted(wanted)}", limit
        )
        return row
    except AssertionError as exc:
        row = await session_row(manager, session_id)
        raise AssertionError(f"{exc}; it is {row.status} ({row.status_info})") from None
