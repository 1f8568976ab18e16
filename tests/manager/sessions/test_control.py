"""Restart, rename, interrupt; refused kernels; destroy with a lost agent; the sweeper."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime, timedelta

import grpc
from sqlalchemy import update

from bai.api.common.v1 import session_pb2 as common
from bai.api.manager.v1 import session_pb2 as pb
from bai.manager.db.compute import AgentRow, SessionRow
from bai.manager.sessions import sweeper
from tests.manager.callers import refused
from tests.manager.fixtures import ManagerHandle
from tests.manager.sessions.helpers import (
    GiB,
    agent_occupied,
    agents,
    call,
    create,
    create_request,
    kernels_of,
    make_group,
    member,
    status_of,
    wait_status,
)
from tests.rpc_errors import reason_of

AGENT = {"cpu": "4", "mem": str(8 * GiB)}


async def test_rename_restart_and_interrupt(
    manager: ManagerHandle, channel: grpc.aio.Channel
) -> None:
    group = await make_group(manager)
    user = await member(manager)
    async with agents(channel, group, AGENT) as (agent,):
        session = await create(channel, user, create_request(group, enqueue_only=False))
        other = await create(channel, user, create_request(group, name="taken-1"))
        renamed = await call(
            channel,
            user,
            "RenameSession",
            pb.RenameSessionRequest(session_id=session.id, new_name="new-name"),
        )
        assert renamed.session.name == "new-name"
        clash = pb.RenameSessionRequest(session_id=session.id, new_name="taken-1")
        assert reason_of(await refused(call(channel, user, "RenameSession", clash))) == (
            "ALREADY_EXISTS"
        )
        bad = pb.RenameSessionRequest(session_id=session.id, new_name="x")
        assert reason_of(await refused(call(channel, user, "RenameSession", bad))) == (
            "INVALID_FIELD"
        )
        await call(
            channel, user, "InterruptSession", pb.InterruptSessionRequest(session_id=session.id)
        )
        assert agent.state.interrupted == [session.kernels[0].id]
        restart = pb.RestartSessionRequest(session_id=session.id)
        restarted = await call(channel, user, "RestartSession", restart)
        assert restarted.session.status == common.SESSION_STATUS_RUNNING
        assert agent.state.restarted == [session.kernels[0].id]
        history = [h.status for h in restarted.session.kernels[0].status_history]
        assert history[-2:] == [common.KERNEL_STATUS_RESTARTING, common.KERNEL_STATUS_RUNNING]
        pending_restart = pb.RestartSessionRequest(session_id=other.id)
        await wait_status(manager, other.id, ["RUNNING"])
        await call(channel, user, "DestroySession", pb.DestroySessionRequest(session_id=other.id))
        error = await refused(call(channel, user, "RestartSession", pending_restart))
        assert reason_of(error) == "SESSION_NOT_READY"


async def test_a_kernel_the_agent_refuses_cancels_the_session(
    manager: ManagerHandle, channel: grpc.aio.Channel
) -> None:
    group = await make_group(manager)
    user = await member(manager)
    async with agents(channel, group, AGENT) as (agent,):
        agent.state.refuse.add("*")
        session = await create(channel, user, create_request(group, enqueue_only=False))
        assert session.status == common.SESSION_STATUS_CANCELLED
        assert session.kernels[0].status_reason == common.LIFECYCLE_REASON_NO_CAPACITY
        assert await agent_occupied(manager, agent.agent_id) == {}


async def test_destroy_with_a_lost_agent_ends_the_kernels_at_once(
    manager: ManagerHandle, channel: grpc.aio.Channel
) -> None:
    group = await make_group(manager)
    user = await member(manager)
    async with agents(channel, group, AGENT) as (agent,):
        session = await create(channel, user, create_request(group, enqueue_only=False))
        async with manager.ctx.sessions() as db, db.begin():
            await db.execute(
                update(AgentRow).where(AgentRow.id == agent.agent_id).values(status="LOST")
            )
        reply = await call(
            channel, user, "DestroySession", pb.DestroySessionRequest(session_id=session.id)
        )
        assert reply.session.status == common.SESSION_STATUS_TERMINATED
        assert await agent_occupied(manager, agent.agent_id) == {}
        assert agent.state.destroyed == []


async def test_sweeper_retries_then_gives_up_a_stuck_session(
    manager: ManagerHandle, channel: grpc.aio.Channel
) -> None:
    group = await make_group(manager)
    user = await member(manager)
    ctx = manager.ctx
    async with agents(channel, group, AGENT) as (agent,):
        agent.state.hold = True
        session = await create(channel, user, create_request(group))
        await wait_status(manager, session.id, ["PREPARING"])
        assert agent.state.create_calls == 1
        now = datetime.now(UTC)
        for retry in range(1, 4):
            now += timedelta(minutes=3)
            result = await sweeper.sweep_once(ctx.sessions, ctx.redis, ctx.agent_pool, now)
            assert result.retried >= 1
            assert agent.state.create_calls == 1 + retry
            assert await status_of(manager, session.id) == "PREPARING"
        now += timedelta(minutes=3)
        result = await sweeper.sweep_once(ctx.sessions, ctx.redis, ctx.agent_pool, now)
        assert result.given_up >= 1
        assert await status_of(manager, session.id) == "CANCELLED"
        (kernel,) = await kernels_of(manager, session.id)
        assert (kernel.status, kernel.status_reason) == ("CANCELLED", "hang-timeout")
        assert await agent_occupied(manager, agent.agent_id) == {}
        assert agent.state.destroyed == [str(kernel.id)]


async def test_batch_past_its_timeout_is_ended_by_the_manager(
    manager: ManagerHandle, channel: grpc.aio.Channel
) -> None:
    group = await make_group(manager)
    user = await member(manager)
    ctx = manager.ctx
    async with agents(channel, group, AGENT) as (agent,):
        request = create_request(
            group,
            enqueue_only=False,
            type=common.SESSION_TYPE_BATCH,
            startup_command="sleep 100",
        )
        request.batch_timeout.seconds = 60
        session = await create(channel, user, request)
        assert session.status == common.SESSION_STATUS_RUNNING
        now = datetime.now(UTC) + timedelta(minutes=2)
        result = await sweeper.sweep_once(ctx.sessions, ctx.redis, ctx.agent_pool, now)
        assert result.batch_timeouts == 1
        async with ctx.sessions() as db:
            row = await db.get(SessionRow, uuid.UUID(session.id))
        assert row is not None
        assert (row.status, row.result, row.status_reason) == (
            "TERMINATED",
            "failure",
            "task-timeout",
        )
        assert await agent_occupied(manager, agent.agent_id) == {}


async def test_dependencies_block_destroy_unless_recursive(
    manager: ManagerHandle, channel: grpc.aio.Channel
) -> None:
    group = await make_group(manager)
    user = await member(manager)
    first = await create(channel, user, create_request(group, name="first-1"))
    batch = create_request(
        group,
        type=common.SESSION_TYPE_BATCH,
        startup_command="true",
        dependencies=["first-1"],
    )
    second = await create(channel, user, batch)
    assert list(second.dependencies) == [first.id]
    missing = create_request(
        group, type=common.SESSION_TYPE_BATCH, startup_command="true", dependencies=["nope-1"]
    )
    assert reason_of(await refused(create(channel, user, missing))) == "REFERENCE_NOT_FOUND"
    destroy = pb.DestroySessionRequest(session_id=first.id)
    assert reason_of(await refused(call(channel, user, "DestroySession", destroy))) == "IN_USE"
    destroy.recursive = True
    await call(channel, user, "DestroySession", destroy)
    assert await status_of(manager, first.id) == "CANCELLED"
    assert await status_of(manager, second.id) == "CANCELLED"
