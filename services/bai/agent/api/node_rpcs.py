"""AgentService handlers for the node: ports, images, commits, hardware, health, apps."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from datetime import timedelta

from bai.agent.api.edge import Context, streaming, unary
from bai.agent.config import AgentConfig
from bai.agent.context import AgentContext
from bai.agent.kernels.apps import start_app, stop_app
from bai.agent.kernels.commit import commit_kernel
from bai.agent.kernels.image_ops import image_not_found, needs_pull
from bai.agent.kernels.lifecycle import KernelManager
from bai.agent.node import hardware_info, health
from bai.api.agent.v1 import agent_pb2
from bai.common.errors import InvalidArgument, Unavailable
from bai.common.grpc_errors import to_rpc_status


def _required(value: str, field: str) -> str:
    if not value:
        raise InvalidArgument.field(field, "is required")
    return value


# CheckAndPullImage gives up after this long unless the request says otherwise.
PULL_TIMEOUT = timedelta(minutes=15)


class NodeRpcs:
    config: AgentConfig
    ctx: AgentContext
    km: KernelManager

    @unary
    async def AssignPort(
        self, request: agent_pb2.AssignPortRequest, context: Context
    ) -> agent_pb2.AssignPortResponse:
        return agent_pb2.AssignPortResponse(port=self.ctx.ports.assign(request.request_id))

    @unary
    async def ReleasePort(
        self, request: agent_pb2.ReleasePortRequest, context: Context
    ) -> agent_pb2.ReleasePortResponse:
        self.ctx.ports.release(request.port)
        return agent_pb2.ReleasePortResponse()

    @streaming
    async def CheckAndPullImage(
        self, request: agent_pb2.CheckAndPullImageRequest, context: Context
    ) -> AsyncIterator[agent_pb2.CheckAndPullImageResponse]:
        if not request.image.canonical:
            raise InvalidArgument.field("image.canonical", "is required")
        limit = request.timeout.ToTimedelta() if request.HasField("timeout") else PULL_TIMEOUT
        if limit <= timedelta(0):
            raise InvalidArgument.field("timeout", "must be positive")
        images = self.km.images
        local = await self.ctx.runtime.inspect_image(request.image.canonical)
        pulling = needs_pull(local, request.image, request.pull_policy)
        if pulling:
            try:
                async with asyncio.timeout(limit.total_seconds()):
                    async for progress in images.pull(request.image):
                        yield agent_pb2.CheckAndPullImageResponse(
                            progress=agent_pb2.ImageProgress(
                                current_bytes=progress.current_bytes,
                                total_bytes=progress.total_bytes,
                                message=progress.message,
                            )
                        )
            except TimeoutError:
                raise Unavailable(
                    f"pulling {request.image.canonical} took longer than {limit}",
                    reason="IMAGE_PULL_FAILED",
                    metadata={"image": request.image.canonical, "detail": "timeout"},
                ) from None
            local = await self.ctx.runtime.inspect_image(request.image.canonical)
        if local is None:
            raise image_not_found(request.image)
        outcome = (
            agent_pb2.PULL_OUTCOME_PULLED if pulling else agent_pb2.PULL_OUTCOME_ALREADY_PRESENT
        )
        result = agent_pb2.PullResult(outcome=outcome, digest=local.digest)
        yield agent_pb2.CheckAndPullImageResponse(result=result)

    @unary
    async def ListImages(
        self, request: agent_pb2.ListImagesRequest, context: Context
    ) -> agent_pb2.ListImagesResponse:
        return agent_pb2.ListImagesResponse(images=await self.km.images.installed())

    @unary
    async def PurgeImages(
        self, request: agent_pb2.PurgeImagesRequest, context: Context
    ) -> agent_pb2.PurgeImagesResponse:
        if any(not ref for ref in request.images):
            raise InvalidArgument.field("images", "must not contain empty references")
        reply = agent_pb2.PurgeImagesResponse()
        for ref, error in await self.km.images.purge(list(request.images), request.force):
            result = reply.results.add(image=ref)
            if error is not None:
                result.error.CopyFrom(to_rpc_status(error)[1])
        return reply

    @unary
    async def GatherHardwareInfo(
        self, request: agent_pb2.GatherHardwareInfoRequest, context: Context
    ) -> agent_pb2.GatherHardwareInfoResponse:
        return agent_pb2.GatherHardwareInfoResponse(hardware=await hardware_info(self.ctx))

    @unary
    async def GetHealth(
        self, request: agent_pb2.GetHealthRequest, context: Context
    ) -> agent_pb2.GetHealthResponse:
        return await health(self.ctx, len(self.km.live()))

    @unary
    async def StartService(
        self, request: agent_pb2.StartServiceRequest, context: Context
    ) -> agent_pb2.StartServiceResponse:
        if request.port < 0:
            raise InvalidArgument.field("port", "must not be negative")
        app = await start_app(
            self.km,
            _required(request.kernel_id, "kernel_id"),
            _required(request.service, "service"),
            request.port,
            request.envs,
            request.arguments,
        )
        return agent_pb2.StartServiceResponse(
            kernel_host=app.kernel_host,
            host_port=app.host_port,
            container_port=app.container_port,
            protocol=app.protocol,  # type: ignore[arg-type]
            already_running=app.already_running,
        )

    @unary
    async def ShutdownService(
        self, request: agent_pb2.ShutdownServiceRequest, context: Context
    ) -> agent_pb2.ShutdownServiceResponse:
        await stop_app(
            self.km,
            _required(request.kernel_id, "kernel_id"),
            _required(request.service, "service"),
        )
        return agent_pb2.ShutdownServiceResponse()

    @streaming
    async def CommitKernel(
        self, request: agent_pb2.CommitKernelRequest, context: Context
    ) -> AsyncIterator[agent_pb2.CommitKernelResponse]:
        _required(request.kernel_id, "kernel_id")
        async for reply in commit_kernel(self.km, request):
            yield reply
