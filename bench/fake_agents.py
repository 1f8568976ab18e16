"""Fake agents for load benches, written to the agent contract.

Each one serves AgentService (only CreateKernels and DestroyKernel do anything)
on its own port and keeps an AgentRegistryService.Connect stream to the
manager. CreateKernels answers at once and then reports PREPARING, CREATING
and STARTED over the stream, as a real agent does; unlike the test fakes,
events are pipelined (acks are read by a separate task), as the real agent's
outbox does, so that the manager, not the fake, sets the pace.
"""

from __future__ import annotations

import asyncio
import contextlib
import uuid
from collections.abc import AsyncIterator, Coroutine
from typing import Any

import grpc
from google.protobuf.timestamp_pb2 import Timestamp

from bai.api.agent.v1 import agent_pb2, agent_pb2_grpc
from bai.api.common.v1 import image_pb2, node_pb2, types_pb2
from bai.api.common.v1 import session_pb2 as common
from bai.api.manager.v1 import agent_registry_pb2 as reg
from bai.api.manager.v1 import agent_registry_pb2_grpc as reg_grpc

FAKE_IMAGE = "bench.local/fake/python:3.11"
EV = reg.KernelEventType
HEARTBEAT_SECONDS = 5.0


def _now() -> Timestamp:
    stamp = Timestamp()
    stamp.GetCurrentTime()
    return stamp


class FakeAgentService(agent_pb2_grpc.AgentServiceServicer):
    def __init__(self, agent: FakeAgent) -> None:
        self.agent = agent

    async def CreateKernels(
        self, request: agent_pb2.CreateKernelsRequest, context: Any
    ) -> agent_pb2.CreateKernelsResponse:
        results = []
        for config in request.kernels:
            kernel = agent_pb2.Kernel(
                kernel_id=config.kernel_id,
                session_id=request.session_id,
                status=common.KERNEL_STATUS_PREPARING,
                cluster_role=config.cluster_role,
                image=config.image,
            )
            if config.kernel_id not in self.agent.kernels:
                self.agent.kernels[config.kernel_id] = request.session_id
                self.agent.spawn(self.agent.start_kernel(config, request.session_id))
            results.append(
                agent_pb2.KernelCreationResult(kernel_id=config.kernel_id, kernel=kernel)
            )
        return agent_pb2.CreateKernelsResponse(results=results)

    async def DestroyKernel(
        self, request: agent_pb2.DestroyKernelRequest, context: Any
    ) -> agent_pb2.DestroyKernelResponse:
        session_id = self.agent.kernels.pop(request.kernel_id, None)
        if session_id is None:
            return agent_pb2.DestroyKernelResponse(found=False)
        self.agent.spawn(self.agent.end_kernel(request.kernel_id, session_id, request.reason))
        return agent_pb2.DestroyKernelResponse(found=True, exit_code=0)


class FakeAgent:
    """`await FakeAgent.start(manager_address, scaling_group, slots)`; `await close()`."""

    def __init__(self, agent_id: str, server: grpc.aio.Server, channel: grpc.aio.Channel) -> None:
        self.agent_id = agent_id
        self.server = server
        self.channel = channel
        self.kernels: dict[str, str] = {}
        self.started = 0
        self._seq = 0
        self._outgoing: asyncio.Queue[reg.ConnectRequest | None] = asyncio.Queue()
        self._tasks: set[asyncio.Task[Any]] = set()
        self._call: Any = None
        # Why the manager ended the registry stream, if it did (e.g. marked LOST).
        self.stream_error = ""

    @classmethod
    async def start(cls, manager: str, scaling_group: str, slots: dict[str, str]) -> FakeAgent:
        server = grpc.aio.server()
        port = server.add_insecure_port("127.0.0.1:0")
        agent = cls(f"fake-{uuid.uuid4().hex[:8]}", server, grpc.aio.insecure_channel(manager))
        # Only what the manager calls here is implemented; the rest answer UNIMPLEMENTED.
        servicer = FakeAgentService(agent)  # type: ignore[abstract]
        agent_pb2_grpc.add_AgentServiceServicer_to_server(servicer, server)
        await server.start()
        agent._call = reg_grpc.AgentRegistryServiceStub(agent.channel).Connect(agent._requests())
        await agent._outgoing.put(
            reg.ConnectRequest(register=_registration(agent.agent_id, port, scaling_group, slots))
        )
        answer = await agent._call.read()
        if answer is grpc.aio.EOF or answer.WhichOneof("payload") != "registered":
            raise RuntimeError(f"{agent.agent_id} was not registered: {answer}")
        agent.spawn(agent._read_acks())
        agent.spawn(agent._heartbeats(slots))
        return agent

    def spawn(self, work: Coroutine[Any, Any, None]) -> None:
        task = asyncio.create_task(work)
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    async def _requests(self) -> AsyncIterator[reg.ConnectRequest]:
        while (request := await self._outgoing.get()) is not None:
            yield request

    async def _read_acks(self) -> None:
        # Acks, config updates and resyncs: nothing here needs them.
        try:
            while await self._call.read() is not grpc.aio.EOF:
                pass
        except grpc.aio.AioRpcError as exc:
            self.stream_error = f"{exc.code().name}: {exc.details()}"

    async def _heartbeats(self, slots: dict[str, str]) -> None:
        while True:
            await asyncio.sleep(HEARTBEAT_SECONDS)
            heartbeat = reg.AgentHeartbeat(
                available_slots=types_pb2.ResourceSlots(slots=slots),
                kernel_ids=list(self.kernels),
            )
            await self._outgoing.put(reg.ConnectRequest(heartbeat=heartbeat))

    async def _event(self, kernel_id: str, session_id: str, kind: int, **fields: Any) -> None:
        self._seq += 1
        event = reg.KernelEvent(
            kernel_id=kernel_id,
            session_id=session_id,
            type=kind,  # type: ignore[arg-type]
            time=_now(),
            **fields,
        )
        await self._outgoing.put(reg.ConnectRequest(seq=self._seq, kernel_event=event))

    async def start_kernel(self, config: agent_pb2.KernelCreationConfig, session_id: str) -> None:
        kernel_id = config.kernel_id
        await self._event(kernel_id, session_id, EV.KERNEL_EVENT_TYPE_PREPARING)
        await self._event(kernel_id, session_id, EV.KERNEL_EVENT_TYPE_CREATING)
        runtime = agent_pb2.KernelRuntimeInfo(
            container_id="fake-" + kernel_id[:8],
            kernel_host="127.0.0.1",
            allocated_slots=config.resource_slots,
        )
        await self._event(kernel_id, session_id, EV.KERNEL_EVENT_TYPE_STARTED, runtime=runtime)
        self.started += 1

    async def end_kernel(self, kernel_id: str, session_id: str, reason: int) -> None:
        await self._event(kernel_id, session_id, EV.KERNEL_EVENT_TYPE_TERMINATING, reason=reason)
        await self._event(
            kernel_id, session_id, EV.KERNEL_EVENT_TYPE_TERMINATED, reason=reason, exit_code=0
        )

    async def close(self) -> None:
        """Say goodbye (the manager then ends the stream), then stop serving."""
        await self._outgoing.put(reg.ConnectRequest(shutdown=reg.AgentShutdown()))
        await self._outgoing.put(None)
        with contextlib.suppress(TimeoutError, grpc.aio.AioRpcError):
            await asyncio.wait_for(self._call.code(), 5)
        for task in list(self._tasks):
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError, grpc.aio.AioRpcError):
                await task
        self._call.cancel()
        await self.server.stop(None)
        await self.channel.close()


def _registration(
    agent_id: str, port: int, scaling_group: str, slots: dict[str, str]
) -> reg.AgentRegistration:
    return reg.AgentRegistration(
        agent_id=agent_id,
        boot_id=uuid.uuid4().hex,
        addr=f"127.0.0.1:{port}",
        public_host="127.0.0.1",
        scaling_group=scaling_group,
        architecture="x86_64",
        version="bench",
        available_slots=types_pb2.ResourceSlots(slots=slots),
        slot_types=[
            node_pb2.SlotTypeInfo(slot_name="cpu", type=node_pb2.SLOT_TYPE_COUNT),
            node_pb2.SlotTypeInfo(slot_name="mem", type=node_pb2.SLOT_TYPE_BYTES),
        ],
        images=[
            agent_pb2.InstalledImage(
                image=image_pb2.ImageRef(canonical=FAKE_IMAGE, architecture="x86_64"),
                size_bytes=1000,
                labels={"ai.backend.resource.min.cpu": "0.5", "ai.backend.resource.min.mem": "64m"},
            )
        ],
    )
