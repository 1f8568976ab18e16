"""AgentService handlers for kernels: lifecycle, execution, logs, stats, files."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator

from bai.agent.api.edge import Context, streaming, unary
from bai.agent.config import AgentConfig
from bai.agent.kernels import execution, files, operations
from bai.agent.kernels.lifecycle import KernelManager
from bai.agent.kernels.logs_stats import StatsSampler, kernel_stats, stream_logs
from bai.api.agent.v1 import agent_pb2
from bai.common.errors import FailedPrecondition, InvalidArgument
from bai.common.grpc_errors import to_rpc_status


def _kernel_id(value: str, field: str = "kernel_id") -> str:
    if not value:
        raise InvalidArgument.field(field, "is required")
    return value


class KernelRpcs:
    config: AgentConfig
    km: KernelManager

    @unary
    async def CreateKernels(
        self, request: agent_pb2.CreateKernelsRequest, context: Context
    ) -> agent_pb2.CreateKernelsResponse:
        for index, config in enumerate(request.kernels):
            if request.session_id and config.session_id != request.session_id:
                raise InvalidArgument.field(
                    f"kernels[{index}].session_id", "differs from the request's session_id"
                )
        outcomes = await self.km.create_kernels(request.cluster, list(request.kernels))
        reply = agent_pb2.CreateKernelsResponse()
        for outcome in outcomes:
            result = reply.results.add(kernel_id=outcome.kernel_id)
            if outcome.error is not None:
                result.error.CopyFrom(to_rpc_status(outcome.error)[1])
            elif outcome.record is not None:
                result.kernel.CopyFrom(outcome.record.to_proto(self.km.kernel_host))
        return reply

    @unary
    async def DestroyKernel(
        self, request: agent_pb2.DestroyKernelRequest, context: Context
    ) -> agent_pb2.DestroyKernelResponse:
        _kernel_id(request.kernel_id)
        grace = None
        if request.HasField("grace_period"):
            grace = request.grace_period.ToTimedelta().total_seconds()
            if grace < 0:
                raise InvalidArgument.field("grace_period", "must not be negative")
        outcome = await self.km.destroy(request.kernel_id, request.reason, request.forced, grace)
        reply = agent_pb2.DestroyKernelResponse(found=outcome.found)
        if outcome.exit_code is not None:
            reply.exit_code = outcome.exit_code
        if outcome.last_stats is not None:
            reply.last_stats.CopyFrom(kernel_stats(request.kernel_id, outcome.last_stats))
        return reply

    @unary
    async def RestartKernel(
        self, request: agent_pb2.RestartKernelRequest, context: Context
    ) -> agent_pb2.RestartKernelResponse:
        record = await operations.restart_kernel(
            self.km, _kernel_id(request.kernel_id), request.request_id
        )
        return agent_pb2.RestartKernelResponse(kernel=record.to_proto(self.km.kernel_host))

    @unary
    async def InterruptKernel(
        self, request: agent_pb2.InterruptKernelRequest, context: Context
    ) -> agent_pb2.InterruptKernelResponse:
        await operations.interrupt_kernel(self.km, _kernel_id(request.kernel_id))
        return agent_pb2.InterruptKernelResponse()

    @unary
    async def GetKernel(
        self, request: agent_pb2.GetKernelRequest, context: Context
    ) -> agent_pb2.GetKernelResponse:
        record = self.km.get(_kernel_id(request.kernel_id))
        return agent_pb2.GetKernelResponse(kernel=record.to_proto(self.km.kernel_host))

    @unary
    async def ListKernels(
        self, request: agent_pb2.ListKernelsRequest, context: Context
    ) -> agent_pb2.ListKernelsResponse:
        statuses = set(request.statuses)
        records = [
            r
            for r in self.km.records.values()
            if (not request.session_id or r.session_id == request.session_id)
            and (not statuses or r.status in statuses)
        ]
        records.sort(key=lambda r: (r.created_at, r.kernel_id))
        return agent_pb2.ListKernelsResponse(
            kernels=[r.to_proto(self.km.kernel_host) for r in records]
        )

    @unary
    async def SyncKernelRegistry(
        self, request: agent_pb2.SyncKernelRegistryRequest, context: Context
    ) -> agent_pb2.SyncKernelRegistryResponse:
        listed = [_kernel_id(k.kernel_id, "kernels.kernel_id") for k in request.kernels]
        result = operations.sync_registry(self.km, listed, request.destroy_orphans)
        return agent_pb2.SyncKernelRegistryResponse(
            missing_kernel_ids=result.missing, orphan_kernel_ids=result.orphans
        )

    @unary
    async def ResetAgent(
        self, request: agent_pb2.ResetAgentRequest, context: Context
    ) -> agent_pb2.ResetAgentResponse:
        destroyed = await operations.reset_agent(self.km)
        return agent_pb2.ResetAgentResponse(destroyed_kernel_ids=destroyed)

    @streaming
    async def Execute(
        self, requests: AsyncIterator[agent_pb2.ExecuteRequest], context: Context
    ) -> AsyncIterator[agent_pb2.ExecuteResponse]:
        iterator = aiter(requests)
        try:
            first = await anext(iterator)
        except StopAsyncIteration:
            raise FailedPrecondition(
                "the stream ended before start", reason="STREAM_OUT_OF_ORDER"
            ) from None
        async for reply in execution.relay(self.km, first, iterator):
            yield reply

    @streaming
    async def StreamLogs(
        self, request: agent_pb2.StreamLogsRequest, context: Context
    ) -> AsyncIterator[agent_pb2.StreamLogsResponse]:
        tail = request.tail if request.HasField("tail") else None
        since = request.since.ToDatetime() if request.HasField("since") else None
        entries = stream_logs(self.km, _kernel_id(request.kernel_id), tail, request.follow, since)
        async for entry in entries:
            yield agent_pb2.StreamLogsResponse(entry=entry)

    @streaming
    async def WatchStats(
        self, request: agent_pb2.WatchStatsRequest, context: Context
    ) -> AsyncIterator[agent_pb2.WatchStatsResponse]:
        interval = self.config.stats_interval
        if request.HasField("interval"):
            interval = request.interval.ToTimedelta().total_seconds()
            if interval < 1:
                raise InvalidArgument.field("interval", "must be at least 1 s")
        wanted = set(request.kernel_ids)
        sampler = StatsSampler(self.km)
        while True:
            reply = agent_pb2.WatchStatsResponse()
            reply.time.GetCurrentTime()
            for record in list(self.km.records.values()):
                if record.is_terminal or not record.sandbox_id:
                    continue
                if wanted and record.kernel_id not in wanted:
                    continue
                stats = await sampler.kernel(record)
                if stats is not None:
                    reply.kernels.append(stats)
            if request.include_node:
                reply.node.CopyFrom(await asyncio.to_thread(sampler.node))
            yield reply
            await asyncio.sleep(interval)

    @unary
    async def UploadFile(
        self, requests: AsyncIterator[agent_pb2.UploadFileRequest], context: Context
    ) -> agent_pb2.UploadFileResponse:
        iterator = aiter(requests)
        first = await anext(iterator, None)
        if first is None or first.WhichOneof("payload") != "header":
            raise FailedPrecondition(
                "the first message must be the header", reason="STREAM_OUT_OF_ORDER"
            )
        _kernel_id(first.header.kernel_id, "header.kernel_id")

        async def chunks() -> AsyncIterator[bytes]:
            async for message in iterator:
                if message.WhichOneof("payload") != "chunk":
                    raise FailedPrecondition("a second header", reason="STREAM_OUT_OF_ORDER")
                yield message.chunk

        try:
            path, size = await files.upload(self.km, first.header, chunks())
        except Exception:
            # Read what the caller still sends (at most what it announced) before
            # failing: a status sent while it is still writing can reach it as
            # INTERNAL ("Internal error from Core") instead of the real reason.
            left = first.header.size
            async for message in iterator:
                left -= len(message.chunk)
                if left < 0:
                    break
            raise
        return agent_pb2.UploadFileResponse(path=path, size=size)

    @streaming
    async def DownloadFile(
        self, request: agent_pb2.DownloadFileRequest, context: Context
    ) -> AsyncIterator[agent_pb2.DownloadFileResponse]:
        kernel_id = _kernel_id(request.kernel_id)
        async for reply in files.download(self.km, kernel_id, request.path, request.offset):
            yield reply

    @unary
    async def ListFiles(
        self, request: agent_pb2.ListFilesRequest, context: Context
    ) -> agent_pb2.ListFilesResponse:
        entries, truncated = await files.list_files(
            self.km, _kernel_id(request.kernel_id), request.path
        )
        return agent_pb2.ListFilesResponse(entries=entries, truncated=truncated)
