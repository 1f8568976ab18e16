"""BackgroundTaskService: read, follow and cancel background tasks (bai.manager.bgtasks)."""

from __future__ import annotations

from collections.abc import AsyncIterator

from bai.api.manager.v1 import bgtask_pb2 as pb
from bai.api.manager.v1 import bgtask_pb2_grpc
from bai.common.errors import FailedPrecondition, NotFound
from bai.manager.api.convert import timestamp_from_epoch
from bai.manager.api.rpc import Call, unary
from bai.manager.api.stream_auth import server_stream
from bai.manager.auth.principal import Principal
from bai.manager.bgtasks import TaskRecord, visible_to
from bai.manager.context import ManagerContext
from bai.manager.validation import Violations


class BackgroundTaskServicer(bgtask_pb2_grpc.BackgroundTaskServiceServicer):
    SERVICE = "bai.api.manager.v1.BackgroundTaskService"

    def __init__(self, ctx: ManagerContext) -> None:
        self.ctx = ctx

    async def _visible(self, p: Principal, task_id: str) -> TaskRecord:
        v = Violations()
        v.text("task_id", task_id, 64, required=True)
        v.raise_if_any()
        record = await self.ctx.tasks.get(task_id)
        if record is None or not visible_to(p, record):
            raise NotFound(f"background task {task_id!r} not found")
        return record

    @unary()
    async def GetTask(self, request: pb.GetTaskRequest, call: Call) -> pb.GetTaskResponse:
        record = await self._visible(call.principal, request.task_id)
        return pb.GetTaskResponse(task=record.to_proto())

    @server_stream()
    async def WatchTask(
        self, request: pb.WatchTaskRequest, call: Call
    ) -> AsyncIterator[pb.WatchTaskResponse]:
        await self._visible(call.principal, request.task_id)
        async for event_type, record in self.ctx.tasks.watch(request.task_id):
            yield pb.WatchTaskResponse(
                type=event_type,  # type: ignore[arg-type]
                task=record.to_proto(),
                time=timestamp_from_epoch(record.updated_at),
            )

    @unary(audit=("bgtask", "cancel"))
    async def CancelTask(self, request: pb.CancelTaskRequest, call: Call) -> pb.CancelTaskResponse:
        record = await self._visible(call.principal, request.task_id)
        call.entity_id = record.id
        if record.status != "cancelled":
            # No task kind supports cancelling yet (each says cancellable=false).
            raise FailedPrecondition(
                f"the task is {record.status} and cannot be cancelled", reason="INVALID_STATE"
            )
        return pb.CancelTaskResponse(task=record.to_proto())
