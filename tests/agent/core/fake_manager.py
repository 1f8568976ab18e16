"""A fake AgentRegistryService (the manager's side of the agent's control stream),
written against agent_registry.proto, for the registry client's tests."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from typing import Any

import grpc
from google.protobuf.duration_pb2 import Duration

from bai.api.manager.v1 import agent_registry_pb2 as reg
from bai.api.manager.v1 import agent_registry_pb2_grpc


class FakeRegistry(agent_registry_pb2_grpc.AgentRegistryServiceServicer):
    def __init__(self) -> None:
        # Per connection: what the agent sent, in order.
        self.streams: list[list[reg.ConnectRequest]] = []
        self.metadata: list[dict[str, str]] = []
        self.ack_events = True
        self.stored_seq = 0
        self.unknown_kernel_ids: list[str] = []
        self.heartbeat = Duration(nanos=100_000_000)
        self._out: asyncio.Queue[reg.ConnectResponse | None] | None = None
        self.changed = asyncio.Event()

    def push(self, response: reg.ConnectResponse) -> None:
        assert self._out is not None
        self._out.put_nowait(response)

    def drop(self) -> None:
        """End the current stream from the manager's side."""
        assert self._out is not None
        self._out.put_nowait(None)

    def all_sent(self) -> list[reg.ConnectRequest]:
        return [m for stream in self.streams for m in stream]

    def events(self, stream: int | None = None) -> list[reg.ConnectRequest]:
        messages = self.all_sent() if stream is None else self.streams[stream]
        return [m for m in messages if m.seq]

    async def Connect(
        self, request_iterator: AsyncIterator[reg.ConnectRequest], context: Any
    ) -> AsyncIterator[reg.ConnectResponse]:
        received: list[reg.ConnectRequest] = []
        self.streams.append(received)
        self.metadata.append(dict(context.invocation_metadata() or ()))
        out: asyncio.Queue[reg.ConnectResponse | None] = asyncio.Queue()
        self._out = out
        first = await anext(aiter(request_iterator))
        received.append(first)
        self.changed.set()
        yield reg.ConnectResponse(
            registered=reg.RegistrationAccepted(
                heartbeat_interval=self.heartbeat,
                heartbeat_timeout=Duration(seconds=30),
                manager_id="fake-manager",
                last_acked_seq=self.stored_seq,
                scaling_group="from-manager",
                unknown_kernel_ids=self.unknown_kernel_ids,
            )
        )

        async def read() -> None:
            async for message in request_iterator:
                received.append(message)
                self.changed.set()
                if message.seq and self.ack_events:
                    self.stored_seq = max(self.stored_seq, message.seq)
                    out.put_nowait(reg.ConnectResponse(ack=reg.EventAck(seq=self.stored_seq)))
            out.put_nowait(None)

        reader = asyncio.create_task(read())
        try:
            while (item := await out.get()) is not None:
                yield item
        finally:
            reader.cancel()


async def serve(registry: FakeRegistry) -> tuple[grpc.aio.Server, int]:
    server = grpc.aio.server()
    agent_registry_pb2_grpc.add_AgentRegistryServiceServicer_to_server(registry, server)
    port = server.add_insecure_port("127.0.0.1:0")
    await server.start()
    return server, port
