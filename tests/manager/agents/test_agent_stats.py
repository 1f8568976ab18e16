"""AgentService.WatchAgentStats relayed from a real agent process (its container
runtime, not under test, is the agent tests' host-process fake)."""

from __future__ import annotations

from typing import Any

import grpc
from google.protobuf.duration_pb2 import Duration

from bai.agent.main import RunningAgent
from bai.api.manager.v1 import agent_pb2, agent_pb2_grpc
from tests.agent.core.fake_runtime import HostProcessRuntime
from tests.agent.core.helpers import eventually
from tests.manager.agents.test_real_agent import status_of
from tests.manager.callers import make_caller, refused, superadmin
from tests.manager.fixtures import ManagerHandle
from tests.rpc_errors import reason_of

METHOD = "/bai.api.manager.v1.AgentService/WatchAgentStats"


def watch(channel: grpc.aio.Channel, metadata: Any, **fields: Any) -> Any:
    request = agent_pb2.WatchAgentStatsRequest(**fields)
    return agent_pb2_grpc.AgentServiceStub(channel).WatchAgentStats(request, metadata=metadata)


async def test_a_superadmin_watches_a_node_and_others_may_not(
    manager: ManagerHandle,
    channel: grpc.aio.Channel,
    real_agent: tuple[RunningAgent, HostProcessRuntime],
) -> None:
    agent, _ = real_agent
    agent_id = agent.ctx.agent_id

    async def alive() -> bool:
        return await status_of(manager, agent_id) == "ALIVE"

    await eventually(alive, "the agent is ALIVE in the manager")
    admin = await superadmin(manager)
    stream = watch(channel, admin.metadata(METHOD), agent_id=agent_id, interval=Duration(seconds=1))
    samples = []
    async for sample in stream:
        samples.append(sample)
        if len(samples) == 2:
            stream.cancel()
            break
    for sample in samples:
        assert sample.node.mem_total_bytes > 0 and sample.node.mem_used_bytes > 0
        assert sample.time.seconds > 0 and not sample.kernels
    assert samples[1].time.ToDatetime() > samples[0].time.ToDatetime()

    too_fast = watch(
        channel, admin.metadata(METHOD), agent_id=agent_id, interval=Duration(nanos=500_000_000)
    )
    assert reason_of(await refused(too_fast.read())) == "INVALID_FIELD"
    missing = watch(channel, admin.metadata(METHOD), agent_id="no-such-agent")
    assert (await refused(missing.read())).code() == grpc.StatusCode.NOT_FOUND
    user = await make_caller(manager, "user")
    theirs = watch(channel, user.metadata(METHOD), agent_id=agent_id)
    assert (await refused(theirs.read())).code() in (
        grpc.StatusCode.PERMISSION_DENIED,
        grpc.StatusCode.NOT_FOUND,
    )

    await agent.stop()
    gone = watch(channel, admin.metadata(METHOD), agent_id=agent_id)
    assert reason_of(await refused(gone.read())) == "AGENT_UNAVAILABLE"
