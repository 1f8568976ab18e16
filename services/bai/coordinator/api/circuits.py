"""CircuitService: thin servicer over CoordinatorState (the manager is its caller)."""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, datetime

from google.protobuf import timestamp_pb2

from bai.api.coordinator.v1 import coordinator_pb2 as pb
from bai.api.coordinator.v1 import coordinator_pb2_grpc
from bai.coordinator.api.convert import circuit_to_proto, routes_from_proto, spec_from_proto
from bai.coordinator.api.edge import Context, unary
from bai.coordinator.api.paging import page_of
from bai.coordinator.health import RouteHealthWatcher
from bai.coordinator.records import Circuit
from bai.coordinator.spec import parse_circuit_id
from bai.coordinator.state import CoordinatorState


def list_key(circuit: Circuit) -> str:
    """Sorts like `CoordinatorState.list_circuits`: creation time, then id."""
    stamp = circuit.created_at.timestamp() if circuit.created_at else 0.0
    return f"{stamp:018.6f}/{circuit.id}"


class CircuitServicer(coordinator_pb2_grpc.CircuitServiceServicer):
    SERVICE = "bai.api.coordinator.v1.CircuitService"

    def __init__(
        self,
        state: CoordinatorState,
        health: RouteHealthWatcher,
        internal_token: str,
        shutting_down: Callable[[], bool],
    ) -> None:
        self.state = state
        self.health = health
        self.internal_token = internal_token
        self.shutting_down = shutting_down

    def _proto(self, circuit: Circuit) -> pb.Circuit:
        return circuit_to_proto(circuit, self.state.worker, self.health.of)

    @unary
    async def CreateCircuit(
        self, request: pb.CreateCircuitRequest, context: Context
    ) -> pb.CreateCircuitResponse:
        circuit = await self.state.create_circuit(spec_from_proto(request))
        return pb.CreateCircuitResponse(circuit=self._proto(circuit))

    @unary
    async def GetCircuit(
        self, request: pb.GetCircuitRequest, context: Context
    ) -> pb.GetCircuitResponse:
        circuit = self.state.get_circuit(parse_circuit_id(request.circuit_id))
        return pb.GetCircuitResponse(circuit=self._proto(circuit))

    @unary
    async def ListCircuits(
        self, request: pb.ListCircuitsRequest, context: Context
    ) -> pb.ListCircuitsResponse:
        query = [request.session_id, request.endpoint_id, request.user_id, request.worker]
        found = self.state.list_circuits(*query)
        page, token = page_of(found, list_key, request.page_size, request.page_token, query)
        return pb.ListCircuitsResponse(
            circuits=[self._proto(c) for c in page], next_page_token=token
        )

    @unary
    async def UpdateRoutes(
        self, request: pb.UpdateRoutesRequest, context: Context
    ) -> pb.UpdateRoutesResponse:
        circuit_id = parse_circuit_id(request.circuit_id)
        current = self.state.get_circuit(circuit_id)
        circuit = await self.state.update_routes(
            circuit_id,
            routes_from_proto(request.routes, current.protocol),
            tuple(request.session_ids),
        )
        return pb.UpdateRoutesResponse(circuit=self._proto(circuit))

    @unary
    async def DeleteCircuit(
        self, request: pb.DeleteCircuitRequest, context: Context
    ) -> pb.DeleteCircuitResponse:
        await self.state.delete_circuit(parse_circuit_id(request.circuit_id))
        return pb.DeleteCircuitResponse()

    @unary
    async def IssueAppToken(
        self, request: pb.IssueAppTokenRequest, context: Context
    ) -> pb.IssueAppTokenResponse:
        ttl = request.ttl.ToTimedelta().total_seconds() if request.HasField("ttl") else None
        token, expires = self.state.issue_token(
            parse_circuit_id(request.circuit_id), request.user_id, ttl
        )
        stamp = timestamp_pb2.Timestamp()
        stamp.FromDatetime(datetime.fromtimestamp(expires, UTC))
        return pb.IssueAppTokenResponse(token=token, expires_at=stamp)
