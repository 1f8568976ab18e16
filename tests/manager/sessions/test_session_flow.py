"""Create -> scheduler -> CreateKernels on a fake agent -> RUNNING, and back down."""

from __future__ import annotations

import grpc

from bai.api.common.v1 import session_pb2 as common
from bai.api.manager.v1 import session_pb2 as pb
from tests.manager.fixtures import ManagerHandle
from tests.manager.sessions.helpers import (
    SMALL,
    GiB,
    agent_occupied,
    agents,
    call,
    create,
    create_request,
    kernels_of,
    make_group,
    member,
    wait_status,
)


async def test_create_waits_until_running_then_destroy_frees_the_agent(
    manager: ManagerHandle, channel: grpc.aio.Channel
) -> None:
    group = await make_group(manager)
    user = await member(manager)
    async with agents(channel, group, {"cpu": "4", "mem": str(8 * GiB)}) as (agent,):
        request = create_request(group, enqueue_only=False, name="flow-1")
        reply = await call(channel, user, "CreateSession", request)
        session = reply.session
        assert not reply.wait_timed_out
        assert session.status == common.SESSION_STATUS_RUNNING
        assert session.agent_ids == [agent.agent_id]
        assert [k.status for k in session.kernels] == [common.KERNEL_STATUS_RUNNING]
        assert dict(session.occupied_slots.slots) == SMALL
        assert await agent_occupied(manager, agent.agent_id) == SMALL
        history = [h.status for h in session.status_history]
        assert history[0] == common.SESSION_STATUS_PENDING
        assert history[-1] == common.SESSION_STATUS_RUNNING
        assert common.SESSION_STATUS_SCHEDULED in history

        destroyed = await call(
            channel, user, "DestroySession", pb.DestroySessionRequest(session_id=session.id)
        )
        assert destroyed.session.status in (
            common.SESSION_STATUS_TERMINATING,
            common.SESSION_STATUS_TERMINATED,
        )
        await wait_status(manager, session.id, ["TERMINATED"])
        assert await agent_occupied(manager, agent.agent_id) == {}
        kernels = await kernels_of(manager, session.id)
        assert [k.status for k in kernels] == ["TERMINATED"]
        assert agent.state.destroyed == [str(kernels[0].id)]


async def test_enqueue_only_returns_pending_and_the_scheduler_takes_it(
    manager: ManagerHandle, channel: grpc.aio.Channel
) -> None:
    group = await make_group(manager)
    user = await member(manager)
    async with agents(channel, group, {"cpu": "4", "mem": str(8 * GiB)}):
        session = await create(channel, user, create_request(group))
        assert session.status == common.SESSION_STATUS_PENDING
        assert len(session.kernels) == 1
        await wait_status(manager, session.id, ["RUNNING"])
