"""Messages for an agent reach it through whichever replica holds its stream."""

from __future__ import annotations

import asyncio

import grpc

from bai.api.manager.v1 import agent_registry_pb2 as reg
from bai.manager.agents import commands
from bai.manager.agents.streams import AgentStreams
from tests.manager.agents.fake_agent import RegistryClient, registration
from tests.manager.fixtures import ManagerHandle, unique


async def test_another_replica_relays_through_redis(
    manager: ManagerHandle, channel: grpc.aio.Channel
) -> None:
    agent_id = unique("i")
    client = RegistryClient(channel)
    try:
        await client.register(registration(agent_id))
        # The manager's relay is subscribed (it starts with the manager).
        for _ in range(200):
            if (await manager.ctx.redis.pubsub_numsub(commands.CHANNEL))[0][1]:
                break
            await asyncio.sleep(0.05)
        # A replica that holds no stream (its own AgentStreams) sends a message.
        elsewhere = AgentStreams()
        message = reg.ConnectResponse(config=reg.AgentConfigUpdate(scaling_group="default"))
        await commands.send(manager.ctx.redis, elsewhere, agent_id, message)
        pushed = await client.recv()
        assert pushed == message
    finally:
        await client.close()
