"""The applier's optimistic checks against the real database.

The session is reserved for a future start, so the manager's own scheduling
loop (which uses the real clock) leaves it alone; these tests schedule it
with a snapshot taken "later".
"""

from __future__ import annotations

import uuid
from datetime import UTC, datetime, timedelta

import grpc
from google.protobuf.timestamp_pb2 import Timestamp
from sqlalchemy import update

from bai.api.common.v1 import session_pb2 as common
from bai.manager.db.compute import AgentRow, SessionRow
from bai.manager.db.policies import ScalingGroupRow
from bai.manager.scheduling import Plan, SchedulerConfig, SchedulingSnapshot, schedule
from bai.manager.sessions import applier, snapshot_builder
from tests.manager.callers import Caller
from tests.manager.fixtures import ManagerHandle
from tests.manager.sessions.helpers import (
    GiB,
    agent_occupied,
    agents,
    create,
    create_request,
    make_group,
    member,
    status_of,
)

LATER = timedelta(hours=2)


async def _reserved_session(channel: grpc.aio.Channel, who: Caller, group: str) -> str:
    starts_at = Timestamp()
    starts_at.FromDatetime(datetime.now(UTC) + timedelta(hours=1))
    request = create_request(
        group, type=common.SESSION_TYPE_BATCH, startup_command="true", starts_at=starts_at
    )
    session = await create(channel, who, request)
    return session.id


async def _plan(manager: ManagerHandle, group: str) -> tuple[SchedulingSnapshot, Plan]:
    async with manager.ctx.sessions() as db:
        row = await db.get(ScalingGroupRow, group)
        assert row is not None
        snapshot = await snapshot_builder.build_snapshot(
            db, row, datetime.now(UTC) + LATER, limit=100
        )
    return snapshot, schedule(snapshot, SchedulerConfig())


async def test_a_changed_agent_revision_skips_the_placement(
    manager: ManagerHandle, channel: grpc.aio.Channel
) -> None:
    group = await make_group(manager)
    user = await member(manager)
    async with agents(channel, group, {"cpu": "4", "mem": str(8 * GiB)}) as (agent,):
        session_id = await _reserved_session(channel, user, group)
        snapshot, plan = await _plan(manager, group)
        assert [p.session_id for p in plan.placements] == [session_id]
        # Another replica changed the agent after the snapshot.
        async with manager.ctx.sessions() as db, db.begin():
            await db.execute(
                update(AgentRow)
                .where(AgentRow.id == agent.agent_id)
                .values(revision=AgentRow.revision + 1)
            )
        now = datetime.now(UTC) + LATER
        async with manager.ctx.sessions() as db, db.begin():
            stale = await applier.apply_plan(db, snapshot, plan, now)
        assert (stale.scheduled, stale.conflicts) == ([], 1)
        assert await status_of(manager, session_id) == "PENDING"
        assert await agent_occupied(manager, agent.agent_id) == {}

        snapshot, plan = await _plan(manager, group)
        async with manager.ctx.sessions() as db, db.begin():
            fresh = await applier.apply_plan(db, snapshot, plan, now)
        assert fresh.scheduled == [uuid.UUID(session_id)]
        assert await status_of(manager, session_id) != "PENDING"
        assert await agent_occupied(manager, agent.agent_id) == {"cpu": "1", "mem": str(GiB)}
        # Applying the same plan again changes nothing: the session is no longer PENDING.
        async with manager.ctx.sessions() as db, db.begin():
            again = await applier.apply_plan(db, snapshot, plan, now)
        assert (again.scheduled, again.conflicts) == ([], 1)
        assert await agent_occupied(manager, agent.agent_id) == {"cpu": "1", "mem": str(GiB)}


async def test_diagnostics_are_recorded_for_unplaced_sessions(
    manager: ManagerHandle, channel: grpc.aio.Channel
) -> None:
    group = await make_group(manager)
    user = await member(manager)
    async with agents(channel, group, {"cpu": "4", "mem": str(8 * GiB)}):
        session_id = await _reserved_session(channel, user, group)
        async with manager.ctx.sessions() as db:
            row = await db.get(ScalingGroupRow, group)
            assert row is not None
            snapshot = await snapshot_builder.build_snapshot(db, row, datetime.now(UTC), limit=10)
        plan = schedule(snapshot, SchedulerConfig())
        assert plan.placements == ()
        async with manager.ctx.sessions() as db, db.begin():
            await applier.apply_plan(db, snapshot, plan, datetime.now(UTC))
        async with manager.ctx.sessions() as db:
            session = await db.get(SessionRow, uuid.UUID(session_id))
        assert session is not None
        assert session.scheduling_diagnostics[0]["check"] == "RESERVED_TIME"
        assert session.scheduling_attempts >= 1
