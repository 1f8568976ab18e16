"""AgentClientPool: calls reach the agent at its registered address with the
internal token and agent id; unreachable or lost agents are AGENT_UNAVAILABLE."""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any

import grpc
import pytest
from sqlalchemy import update

from bai.api.agent.v1 import agent_pb2, agent_pb2_grpc
from bai.common.errors import NotFound, Unavailable
from bai.manager.agents.pool import AgentClientPool
from bai.manager.db.compute import AgentRow
from tests.manager.agents.fake_agent import RegistryClient, registration
from tests.manager.fixtures import ManagerHandle, unique


class FakeAgentService(agent_pb2_grpc.AgentServiceServicer):
    """Only what these tests call; records the metadata of each call."""

    def __init__(self) -> None:
        self.seen: list[dict[str, str]] = []

    async def ListKernels(
        self, request: agent_pb2.ListKernelsRequest, context: Any
    ) -> agent_pb2.ListKernelsResponse:
        self.seen.append({k: v for k, v in context.invocation_metadata()})
        return agent_pb2.ListKernelsResponse(kernels=[agent_pb2.Kernel(kernel_id="k1")])

    async def GetKernel(self, request: agent_pb2.GetKernelRequest, context: Any) -> Any:
        await context.abort(grpc.StatusCode.NOT_FOUND, "no such kernel")


@pytest.fixture
async def fake_agent() -> AsyncIterator[tuple[FakeAgentService, grpc.aio.Server, str]]:
    server = grpc.aio.server()
    # Only the methods these tests call are implemented.
    service = FakeAgentService()  # type: ignore[abstract]
    agent_pb2_grpc.add_AgentServiceServicer_to_server(service, server)
    port = server.add_insecure_port("127.0.0.1:0")
    await server.start()
    try:
        yield service, server, f"127.0.0.1:{port}"
    finally:
        await server.stop(None)


async def test_calls_carry_token_and_agent_id_and_map_errors(
    manager: ManagerHandle,
    channel: grpc.aio.Channel,
    fake_agent: tuple[FakeAgentService, grpc.aio.Server, str],
) -> None:
    service, server, addr = fake_agent
    agent_id = unique("i")
    client = RegistryClient(channel)
    pool = AgentClientPool(manager.ctx.sessions, "secret-token")
    try:
        await client.register(registration(agent_id, addr=addr))
        reply = await pool.call(agent_id, "ListKernels", agent_pb2.ListKernelsRequest())
        assert [k.kernel_id for k in reply.kernels] == ["k1"]
        assert service.seen[-1]["x-bai-agent-id"] == agent_id
        assert service.seen[-1]["x-bai-internal-token"] == "secret-token"
        with pytest.raises(NotFound):
            await pool.call(agent_id, "GetKernel", agent_pb2.GetKernelRequest(kernel_id="x"))

        await server.stop(None)
        with pytest.raises(Unavailable) as info:
            await pool.call(agent_id, "ListKernels", agent_pb2.ListKernelsRequest(), deadline=5)
        assert info.value.reason == "AGENT_UNAVAILABLE"
    finally:
        await client.close()
        await pool.close()


async def test_unknown_and_lost_agents_are_unavailable(
    manager: ManagerHandle, channel: grpc.aio.Channel
) -> None:
    pool = AgentClientPool(manager.ctx.sessions, "")
    try:
        with pytest.raises(Unavailable) as info:
            await pool.stub(unique("i"))
        assert info.value.reason == "AGENT_UNAVAILABLE"

        agent_id = unique("i")
        client = RegistryClient(channel)
        await client.register(registration(agent_id))
        await client.close()
        assert await pool.stub(agent_id) is not None
        async with manager.ctx.sessions() as db, db.begin():
            await db.execute(update(AgentRow).where(AgentRow.id == agent_id).values(status="LOST"))
        with pytest.raises(Unavailable) as info:
            await pool.stub(agent_id)
        assert info.value.reason == "AGENT_UNAVAILABLE"
        assert pool.metadata(agent_id) == [("x-bai-agent-id", agent_id)]
    finally:
        await pool.close()
