"""WorkerService: worker launchers register their Envoy and keep it alive."""

from __future__ import annotations

from collections.abc import Callable

from google.protobuf import duration_pb2

from bai.api.coordinator.v1 import coordinator_pb2 as pb
from bai.api.coordinator.v1 import coordinator_pb2_grpc
from bai.common.errors import InvalidArgument
from bai.coordinator.api.convert import worker_from_proto, worker_status_name, worker_to_proto
from bai.coordinator.api.edge import Context, unary
from bai.coordinator.api.paging import page_of
from bai.coordinator.placement import capacity
from bai.coordinator.records import Worker
from bai.coordinator.state import CoordinatorState


class WorkerServicer(coordinator_pb2_grpc.WorkerServiceServicer):
    SERVICE = "bai.api.coordinator.v1.WorkerService"

    def __init__(
        self, state: CoordinatorState, internal_token: str, shutting_down: Callable[[], bool]
    ) -> None:
        self.state = state
        self.internal_token = internal_token
        self.shutting_down = shutting_down

    def _interval(self) -> duration_pb2.Duration:
        interval = duration_pb2.Duration()
        interval.FromMilliseconds(int(self.state.heartbeat_interval * 1000))
        return interval

    def _proto(self, worker: Worker) -> pb.Worker:
        occupied = sum(1 for c in self.state.circuits.values() if c.worker == worker.authority)
        return worker_to_proto(worker, occupied, capacity(worker))

    @staticmethod
    def _authority(value: str) -> str:
        if not value:
            raise InvalidArgument.field("authority", "is required")
        return value

    @unary
    async def RegisterWorker(
        self, request: pb.RegisterWorkerRequest, context: Context
    ) -> pb.RegisterWorkerResponse:
        worker = await self.state.register_worker(worker_from_proto(request))
        return pb.RegisterWorkerResponse(
            worker=self._proto(worker), heartbeat_interval=self._interval()
        )

    @unary
    async def Heartbeat(
        self, request: pb.HeartbeatRequest, context: Context
    ) -> pb.HeartbeatResponse:
        worker = await self.state.heartbeat(self._authority(request.authority))
        return pb.HeartbeatResponse(
            status=self._proto(worker).status, heartbeat_interval=self._interval()
        )

    @unary
    async def DeregisterWorker(
        self, request: pb.DeregisterWorkerRequest, context: Context
    ) -> pb.DeregisterWorkerResponse:
        await self.state.deregister_worker(self._authority(request.authority))
        return pb.DeregisterWorkerResponse()

    @unary
    async def ListWorkers(
        self, request: pb.ListWorkersRequest, context: Context
    ) -> pb.ListWorkersResponse:
        statuses = [worker_status_name(s) for s in request.statuses]
        wanted = sorted({s for s in statuses if s})
        found = self.state.list_workers(wanted)
        page, token = page_of(
            found, lambda w: w.authority, request.page_size, request.page_token, wanted
        )
        return pb.ListWorkersResponse(workers=[self._proto(w) for w in page], next_page_token=token)
