"""Clients for the agents' AgentService: one channel per agent address.

Usage (the session dispatcher and relays):

    stub = await ctx.agent_pool.stub(agent_id)
    with agent_errors(agent_id):
        reply = await stub.CreateKernels(request, metadata=ctx.agent_pool.metadata(agent_id))

or `await ctx.agent_pool.call(agent_id, "DestroyKernel", request)` for unary calls.
The address is read from the agents table on every `stub()` (one indexed
read), so a re-registered agent is reached at its new address at once and a
LOST or TERMINATED agent is refused without a network round trip.
"""

from __future__ import annotations

import contextlib
import time
from collections.abc import Iterator
from typing import Any

import grpc
from google.protobuf.message import Message
from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from bai.api.agent.v1 import agent_pb2_grpc
from bai.common import errors
from bai.common.peer_errors import error_from_peer
from bai.common.shared_secret import INTERNAL_TOKEN_HEADER
from bai.manager.agents.registry import CONNECTED
from bai.manager.db.compute import AgentRow

AGENT_HEADER = "x-bai-agent-id"
DEFAULT_TIMEOUT = 30.0


def unavailable(agent_id: str, message: str) -> errors.Unavailable:
    return errors.Unavailable(message, reason="AGENT_UNAVAILABLE", metadata={"agent_id": agent_id})


def error_from_agent(agent_id: str, exc: grpc.aio.AioRpcError) -> errors.BaiError:
    """The agent's failure as a bai error: unreachable (or its UNAVAILABLE) is
    AGENT_UNAVAILABLE; anything else keeps the agent's code and reason."""
    return error_from_peer(
        exc,
        unreachable_reason="AGENT_UNAVAILABLE",
        peer=f"agent {agent_id}",
        metadata={"agent_id": agent_id},
    )


@contextlib.contextmanager
def agent_errors(agent_id: str) -> Iterator[None]:
    """Turn gRPC failures of a call to `agent_id` into bai errors."""
    try:
        yield
    except grpc.aio.AioRpcError as exc:
        raise error_from_agent(agent_id, exc) from exc


class AgentClientPool:
    def __init__(self, sessions: async_sessionmaker[AsyncSession], internal_token: str) -> None:
        self._sessions = sessions
        self._token = internal_token
        self._channels: dict[str, grpc.aio.Channel] = {}
        # agent id -> (time.monotonic() of the lookup, address)
        self._addresses: dict[str, tuple[float, str]] = {}

    def metadata(self, agent_id: str) -> list[tuple[str, str]]:
        """What every call to `agent_id` carries."""
        items = [(AGENT_HEADER, agent_id)]
        if self._token:
            items.append((INTERNAL_TOKEN_HEADER, self._token))
        return items

    async def address(self, agent_id: str, max_age: float = 0.0) -> str:
        """The agent's address; AGENT_UNAVAILABLE when unknown or not connected.

        With `max_age` (seconds) an address looked up that recently is used again:
        hot paths skip a query per call, at the cost of reaching an agent that was
        lost meanwhile (the call then fails as unreachable, which they retry).
        """
        cached = self._addresses.get(agent_id)
        if max_age > 0 and cached is not None and time.monotonic() - cached[0] < max_age:
            return cached[1]
        async with self._sessions() as db:
            row = (
                await db.execute(
                    select(AgentRow.addr, AgentRow.status).where(AgentRow.id == agent_id)
                )
            ).first()
        if row is None or not row.addr or row.status not in CONNECTED:
            self._addresses.pop(agent_id, None)
        if row is None or not row.addr:
            raise unavailable(agent_id, f"agent {agent_id} is not registered")
        if row.status not in CONNECTED:
            raise unavailable(agent_id, f"agent {agent_id} is {row.status}")
        self._addresses[agent_id] = (time.monotonic(), str(row.addr))
        return str(row.addr)

    def channel(self, addr: str) -> grpc.aio.Channel:
        channel = self._channels.get(addr)
        if channel is None:
            channel = self._channels[addr] = grpc.aio.insecure_channel(addr)
        return channel

    async def stub(
        self, agent_id: str, address_max_age: float = 0.0
    ) -> agent_pb2_grpc.AgentServiceStub:
        address = await self.address(agent_id, address_max_age)
        return agent_pb2_grpc.AgentServiceStub(self.channel(address))

    async def call(
        self,
        agent_id: str,
        method: str,
        request: Message,
        *,
        deadline: float = DEFAULT_TIMEOUT,
        address_max_age: float = 0.0,
    ) -> Any:
        """One unary call with the agent's metadata and error mapping (`deadline` in
        seconds; `address_max_age` as in `address`)."""
        stub = await self.stub(agent_id, address_max_age)
        with agent_errors(agent_id):
            return await getattr(stub, method)(
                request, metadata=self.metadata(agent_id), timeout=deadline
            )

    async def close(self) -> None:
        channels, self._channels = list(self._channels.values()), {}
        for channel in channels:
            await channel.close()
