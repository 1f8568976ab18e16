"""dispatch_round: the sessions of one scheduling round are dispatched together
(rows loaded once), each with its own CreateKernels calls and outcome."""

from __future__ import annotations

import uuid

import grpc
from sqlalchemy import update

from bai.manager.db.compute import KernelRow, SessionRow
from bai.manager.sessions import dispatch
from tests.manager.agents.fake_agent import place_session, session_row
from tests.manager.fixtures import ManagerHandle
from tests.manager.sessions.helpers import agents, make_group

BIG = {"cpu": "100", "mem": str(100 << 30)}


async def scheduled(manager: ManagerHandle, agent_id: str) -> uuid.UUID:
    """A session placed on `agent_id` and not dispatched yet."""
    placed = await place_session(manager, agent_id, ["PREPARING"])
    async with manager.ctx.sessions() as db, db.begin():
        await db.execute(
            update(SessionRow).where(SessionRow.id == placed.session_id).values(status="SCHEDULED")
        )
        await db.execute(
            update(KernelRow)
            .where(KernelRow.session_id == placed.session_id)
            .values(status="SCHEDULED")
        )
    return placed.session_id


async def test_a_round_dispatches_each_session_with_its_own_outcome(
    manager: ManagerHandle, channel: grpc.aio.Channel
) -> None:
    group = await make_group(manager)
    async with agents(channel, group, BIG, BIG) as (willing, full):
        willing.state.hold = True
        full.state.refuse.add("*")
        first = await scheduled(manager, willing.agent_id)
        second = await scheduled(manager, willing.agent_id)
        refused = await scheduled(manager, full.agent_id)
        ctx = manager.ctx
        await dispatch.dispatch_round(
            ctx.sessions, ctx.redis, ctx.agent_pool, [first, uuid.uuid4(), second, refused]
        )
        assert willing.state.create_calls == 2 and full.state.create_calls == 1
        for session_id in (first, second):
            assert (await session_row(manager, session_id)).status == "PREPARING"
        cancelled = await session_row(manager, refused)
        assert (cancelled.status, cancelled.status_reason) == ("CANCELLED", "no-capacity")
        # Dispatched sessions are not dispatched again by a later round.
        await dispatch.dispatch_round(ctx.sessions, ctx.redis, ctx.agent_pool, [refused])
        assert full.state.create_calls == 1
