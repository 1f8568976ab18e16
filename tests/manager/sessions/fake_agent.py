"""A fake agent for session tests, against the contracts: an AgentService server on
a free port plus a registry stream (AgentRegistryService.Connect) that reports
kernel events the way a real agent does (PREPARING, CREATING, STARTED; then
TERMINATING, TERMINATED on destroy). Files live in memory per kernel; path
containment is the real agent's business and is not imitated."""

from __future__ import annotations

import asyncio
import contextlib
import posixpath
import uuid
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from typing import Any

import grpc
from google.protobuf import any_pb2
from google.protobuf.timestamp_pb2 import Timestamp
from google.rpc import code_pb2, status_pb2
from google.rpc.error_details_pb2 import ErrorInfo

from bai.api.agent.v1 import agent_pb2, agent_pb2_grpc
from bai.api.common.v1 import (
    execution_pb2,
    image_pb2,
    node_pb2,
    stats_pb2,
    storage_pb2,
    types_pb2,
)
from bai.api.common.v1 import session_pb2 as common
from bai.api.manager.v1 import agent_registry_pb2 as reg
from bai.common.errors import FailedPrecondition, InvalidArgument, NotFound
from bai.common.grpc_errors import to_grpc_status
from tests.manager.agents.fake_agent import RegistryClient

IMAGE = "cr.test/sessions/python:3.12"
IMAGE_LABELS = {
    "ai.backend.resource.min.cpu": "0.5",
    "ai.backend.resource.min.mem": "64m",
    "ai.backend.resource.max.cpu": "8",
}
EV = reg.KernelEventType
# What every fake kernel offers as apps once running.
SERVICE_PORTS = [
    common.ServicePort(
        name="ttyd", protocol=common.APP_PROTOCOL_HTTP, container_ports=[7681], host_ports=[30001]
    ),
    common.ServicePort(
        name="jupyter",
        protocol=common.APP_PROTOCOL_HTTP,
        container_ports=[8080],
        host_ports=[30002],
    ),
]
FILE_CHUNK = 1 << 20


def _packed(message: Any) -> any_pb2.Any:
    packed = any_pb2.Any()
    packed.Pack(message)
    return packed


def _now() -> Timestamp:
    ts = Timestamp()
    ts.GetCurrentTime()
    return ts


@dataclass
class FakeAgentState:
    kernels: dict[str, agent_pb2.Kernel] = field(default_factory=dict)
    create_calls: int = 0
    destroyed: list[str] = field(default_factory=list)
    interrupted: list[str] = field(default_factory=list)
    restarted: list[str] = field(default_factory=list)
    # Kernel ids CreateKernels refuses with NO_CAPACITY (or every kernel: "*").
    refuse: set[str] = field(default_factory=set)
    # Leave new kernels PREPARING (no further events).
    hold: bool = False
    # Files under each kernel's /home/work (normalized relative path -> bytes),
    # and the file RPCs received ("UploadFile path", ...).
    files: dict[str, dict[str, bytes]] = field(default_factory=dict)
    file_calls: list[str] = field(default_factory=list)
    # Apps started per kernel (service name -> host port), and the app RPCs received.
    services: dict[str, dict[str, int]] = field(default_factory=dict)
    service_calls: list[str] = field(default_factory=list)
    # CommitKernel requests received; `commit_refusal` is raised instead of committing.
    commits: list[agent_pb2.CommitKernelRequest] = field(default_factory=list)
    commit_refusal: Exception | None = None


class FakeAgentService(agent_pb2_grpc.AgentServiceServicer):
    def __init__(self, agent: FakeAgent) -> None:
        self.agent = agent
        self.state = agent.state

    async def CreateKernels(
        self, request: agent_pb2.CreateKernelsRequest, context: Any
    ) -> agent_pb2.CreateKernelsResponse:
        self.state.create_calls += 1
        results = []
        for config in request.kernels:
            known = self.state.kernels.get(config.kernel_id)
            if known is not None:
                results.append(
                    agent_pb2.KernelCreationResult(kernel_id=config.kernel_id, kernel=known)
                )
                continue
            if "*" in self.state.refuse or config.kernel_id in self.state.refuse:
                results.append(
                    agent_pb2.KernelCreationResult(
                        kernel_id=config.kernel_id,
                        error=status_pb2.Status(
                            code=code_pb2.RESOURCE_EXHAUSTED,
                            message="no device left",
                            details=[_packed(ErrorInfo(reason="NO_CAPACITY", domain="bai"))],
                        ),
                    )
                )
                continue
            kernel = agent_pb2.Kernel(
                kernel_id=config.kernel_id,
                session_id=request.session_id,
                status=common.KERNEL_STATUS_PREPARING,
                cluster_role=config.cluster_role,
                image=config.image,
            )
            self.state.kernels[config.kernel_id] = kernel
            results.append(
                agent_pb2.KernelCreationResult(kernel_id=config.kernel_id, kernel=kernel)
            )
            if not self.state.hold:
                self.agent.spawn(self.agent.start_kernel(config))
        return agent_pb2.CreateKernelsResponse(results=results)

    async def DestroyKernel(
        self, request: agent_pb2.DestroyKernelRequest, context: Any
    ) -> agent_pb2.DestroyKernelResponse:
        kernel = self.state.kernels.pop(request.kernel_id, None)
        if kernel is None:
            return agent_pb2.DestroyKernelResponse(found=False)
        self.state.destroyed.append(request.kernel_id)
        self.agent.spawn(self.agent.end_kernel(kernel, request.reason))
        return agent_pb2.DestroyKernelResponse(found=True, exit_code=0)

    async def RestartKernel(
        self, request: agent_pb2.RestartKernelRequest, context: Any
    ) -> agent_pb2.RestartKernelResponse:
        kernel = self.state.kernels[request.kernel_id]
        self.state.restarted.append(request.kernel_id)
        return agent_pb2.RestartKernelResponse(kernel=kernel)

    async def InterruptKernel(
        self, request: agent_pb2.InterruptKernelRequest, context: Any
    ) -> agent_pb2.InterruptKernelResponse:
        self.state.interrupted.append(request.kernel_id)
        return agent_pb2.InterruptKernelResponse()

    async def StartService(
        self, request: agent_pb2.StartServiceRequest, context: Any
    ) -> agent_pb2.StartServiceResponse:
        self.state.service_calls.append(f"start {request.service}")
        port = next((p for p in SERVICE_PORTS if p.name == request.service), None)
        if request.kernel_id not in self.state.kernels or port is None:
            await context.abort_with_status(
                to_grpc_status(NotFound(f"no service {request.service!r}"))
            )
        assert port is not None
        running = self.state.services.setdefault(request.kernel_id, {})
        already = request.service in running
        running[request.service] = port.host_ports[0]
        return agent_pb2.StartServiceResponse(
            kernel_host="127.0.0.1",
            host_port=port.host_ports[0],
            container_port=port.container_ports[0],
            protocol=port.protocol,
            already_running=already,
        )

    async def ShutdownService(
        self, request: agent_pb2.ShutdownServiceRequest, context: Any
    ) -> agent_pb2.ShutdownServiceResponse:
        self.state.service_calls.append(f"stop {request.service}")
        self.state.services.get(request.kernel_id, {}).pop(request.service, None)
        return agent_pb2.ShutdownServiceResponse()

    async def CommitKernel(
        self, request: agent_pb2.CommitKernelRequest, context: Any
    ) -> AsyncIterator[agent_pb2.CommitKernelResponse]:
        self.state.commits.append(request)
        refusal = self.state.commit_refusal
        if refusal is None and request.kernel_id not in self.state.kernels:
            refusal = NotFound("kernel not found", reason="NOT_FOUND")
        if refusal is not None:
            await context.abort_with_status(to_grpc_status(refusal))
        yield agent_pb2.CommitKernelResponse(progress=agent_pb2.ImageProgress(message="committing"))
        image = image_pb2.ImageRef(
            canonical=request.target.canonical,
            architecture=request.target.architecture,
            digest="sha256:" + uuid.uuid4().hex * 2,
            is_local=True,
        )
        yield agent_pb2.CommitKernelResponse(
            result=agent_pb2.CommitResult(image=image, size_bytes=123456)
        )

    async def Execute(
        self, request_iterator: AsyncIterator[agent_pb2.ExecuteRequest], context: Any
    ) -> AsyncIterator[agent_pb2.ExecuteResponse]:
        first = await anext(aiter(request_iterator))
        run_id = uuid.uuid4().hex
        yield agent_pb2.ExecuteResponse(
            started=execution_pb2.ExecutionStarted(run_id=run_id, kernel_id=first.kernel_id)
        )
        code = first.start.code
        if code == "input":
            yield agent_pb2.ExecuteResponse(
                waiting_input=execution_pb2.ExecutionWaitingInput(prompt="name? ")
            )
            reply = await anext(aiter(request_iterator))
            code = "hello " + reply.stdin.data.decode()
        yield agent_pb2.ExecuteResponse(
            output=execution_pb2.ExecutionOutput(
                stream=execution_pb2.OUTPUT_STREAM_STDOUT, data=code.encode(), seq=1
            )
        )
        yield agent_pb2.ExecuteResponse(
            result=execution_pb2.ExecutionResult(
                run_id=run_id, status=execution_pb2.EXECUTION_STATUS_FINISHED, exit_code=0
            )
        )

    async def StreamLogs(
        self, request: agent_pb2.StreamLogsRequest, context: Any
    ) -> AsyncIterator[agent_pb2.StreamLogsResponse]:
        lines = [b"booting", b"ready", b"serving"]
        if request.HasField("tail"):
            lines = lines[len(lines) - request.tail :] if request.tail else []
        for line in lines:
            yield agent_pb2.StreamLogsResponse(
                entry=execution_pb2.LogEntry(
                    kernel_id=request.kernel_id,
                    stream=execution_pb2.OUTPUT_STREAM_STDOUT,
                    time=_now(),
                    data=line,
                )
            )

    async def WatchStats(
        self, request: agent_pb2.WatchStatsRequest, context: Any
    ) -> AsyncIterator[agent_pb2.WatchStatsResponse]:
        while True:
            yield agent_pb2.WatchStatsResponse(
                time=_now(),
                kernels=[
                    stats_pb2.KernelStats(kernel_id=k, cpu_util_percent=12.5)
                    for k in [*request.kernel_ids, "someone-elses-kernel"]
                ],
            )
            await asyncio.sleep(0.05)

    async def _files_of(self, kernel_id: str, context: Any) -> dict[str, bytes]:
        kernel = self.state.kernels.get(kernel_id)
        if kernel is None:
            await context.abort_with_status(to_grpc_status(NotFound("kernel not found")))
        elif kernel.status != common.KERNEL_STATUS_RUNNING:
            not_ready = FailedPrecondition("not running", reason="SESSION_NOT_READY")
            await context.abort_with_status(to_grpc_status(not_ready))
        return self.state.files.setdefault(kernel_id, {})

    async def UploadFile(
        self, request_iterator: AsyncIterator[agent_pb2.UploadFileRequest], context: Any
    ) -> agent_pb2.UploadFileResponse:
        first = await anext(aiter(request_iterator))
        header = first.header
        self.state.file_calls.append(f"UploadFile {header.path}")
        stored = await self._files_of(header.kernel_id, context)
        data = b"".join([r.chunk async for r in request_iterator])
        if len(data) != header.size:
            mismatch = InvalidArgument.field("header.size", "size mismatch")
            await context.abort_with_status(to_grpc_status(mismatch))
        path = posixpath.normpath(header.path.removeprefix("/home/work/"))
        stored[path] = data
        return agent_pb2.UploadFileResponse(path=path, size=len(data))

    async def DownloadFile(
        self, request: agent_pb2.DownloadFileRequest, context: Any
    ) -> AsyncIterator[agent_pb2.DownloadFileResponse]:
        self.state.file_calls.append(f"DownloadFile {request.path}")
        stored = await self._files_of(request.kernel_id, context)
        data = stored.get(posixpath.normpath(request.path.removeprefix("/home/work/")))
        if data is None:
            await context.abort_with_status(to_grpc_status(NotFound("no such file")))
            return
        yield agent_pb2.DownloadFileResponse(chunk=data[:FILE_CHUNK], size=len(data))
        for start in range(FILE_CHUNK, len(data), FILE_CHUNK):
            yield agent_pb2.DownloadFileResponse(chunk=data[start : start + FILE_CHUNK])

    async def ListFiles(
        self, request: agent_pb2.ListFilesRequest, context: Any
    ) -> agent_pb2.ListFilesResponse:
        self.state.file_calls.append(f"ListFiles {request.path}")
        stored = await self._files_of(request.kernel_id, context)
        prefix = posixpath.normpath(request.path or ".")
        prefix = "" if prefix == "." else prefix + "/"
        entries = {}
        for path, data in sorted(stored.items()):
            if not path.startswith(prefix):
                continue
            name, _, rest = path[len(prefix) :].partition("/")
            kind = storage_pb2.FILE_TYPE_DIRECTORY if rest else storage_pb2.FILE_TYPE_FILE
            entries[name] = storage_pb2.FileEntry(
                name=name,
                path=prefix + name,
                type=kind,
                size=0 if rest else len(data),
            )
        return agent_pb2.ListFilesResponse(entries=list(entries.values()))


class FakeAgent:
    """Start with `await FakeAgent.start(channel, scaling_group, slots)`; `close()` at the end."""

    def __init__(self, agent_id: str, registry: RegistryClient, server: grpc.aio.Server) -> None:
        self.agent_id = agent_id
        self.registry = registry
        self.server = server
        self.state = FakeAgentState()
        self._seq = 0
        self._lock = asyncio.Lock()
        self._tasks: set[asyncio.Task[None]] = set()

    @classmethod
    async def start(
        cls, channel: grpc.aio.Channel, scaling_group: str, slots: dict[str, str]
    ) -> FakeAgent:
        server = grpc.aio.server()
        port = server.add_insecure_port("127.0.0.1:0")
        agent_id = f"fake-{uuid.uuid4().hex[:8]}"
        agent = cls(agent_id, RegistryClient(channel), server)
        agent_pb2_grpc.add_AgentServiceServicer_to_server(FakeAgentService(agent), server)
        await server.start()
        await agent.registry.register(
            reg.AgentRegistration(
                agent_id=agent_id,
                boot_id=uuid.uuid4().hex,
                addr=f"127.0.0.1:{port}",
                public_host="127.0.0.1",
                scaling_group=scaling_group,
                architecture="x86_64",
                version="test",
                available_slots=types_pb2.ResourceSlots(slots=slots),
                slot_types=[node_pb2.SlotTypeInfo(slot_name=name) for name in sorted(slots)],
                images=[
                    agent_pb2.InstalledImage(
                        image=image_pb2.ImageRef(canonical=IMAGE, architecture="x86_64"),
                        size_bytes=1000,
                        labels=IMAGE_LABELS,
                    )
                ],
            )
        )
        agent.spawn(agent._heartbeats())
        return agent

    def spawn(self, coro: Any) -> None:
        task = asyncio.create_task(coro)
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    async def _heartbeats(self) -> None:
        while True:
            await asyncio.sleep(5)
            async with self._lock:
                await self.registry.heartbeat(list(self.state.kernels))

    async def kernel_event(self, kernel_id: str, session_id: str, kind: int, **fields: Any) -> None:
        async with self._lock:
            self._seq += 1
            event = reg.KernelEvent(
                kernel_id=kernel_id,
                session_id=session_id,
                type=kind,
                time=_now(),
                **fields,  # type: ignore[arg-type]
            )
            await self.registry.event(self._seq, kernel_event=event)

    async def start_kernel(self, config: agent_pb2.KernelCreationConfig) -> None:
        kid, sid = config.kernel_id, config.session_id
        await self.kernel_event(kid, sid, EV.KERNEL_EVENT_TYPE_PREPARING)
        await self.kernel_event(kid, sid, EV.KERNEL_EVENT_TYPE_CREATING)
        runtime = agent_pb2.KernelRuntimeInfo(
            container_id="c-" + kid[:8],
            kernel_host="127.0.0.1",
            allocated_slots=config.resource_slots,
            service_ports=SERVICE_PORTS,
        )
        if kid in self.state.kernels:
            self.state.kernels[kid].status = common.KERNEL_STATUS_RUNNING
        await self.kernel_event(kid, sid, EV.KERNEL_EVENT_TYPE_STARTED, runtime=runtime)

    async def end_kernel(self, kernel: agent_pb2.Kernel, reason: int) -> None:
        kid, sid = kernel.kernel_id, kernel.session_id
        await self.kernel_event(kid, sid, EV.KERNEL_EVENT_TYPE_TERMINATING, reason=reason)
        await self.kernel_event(
            kid, sid, EV.KERNEL_EVENT_TYPE_TERMINATED, reason=reason, exit_code=0
        )

    async def close(self) -> None:
        for task in list(self._tasks):
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await task
        await self.registry.close()
        await self.server.stop(None)
