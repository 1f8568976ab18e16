"""A fake app-proxy Coordinator (CircuitService) for manager tests, against the
contract: circuits in memory, idempotent by request_id, one port per circuit,
tokens that name the circuit and user. The real Coordinator has its own tests."""

from __future__ import annotations

import itertools
import uuid
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

import grpc
from google.protobuf.timestamp_pb2 import Timestamp

from bai.api.coordinator.v1 import coordinator_pb2 as cpb
from bai.api.coordinator.v1 import coordinator_pb2_grpc
from bai.common.errors import InvalidArgument, NotFound, Unauthenticated
from bai.common.grpc_errors import to_grpc_status

TOKEN = "coordinator-secret"


@dataclass
class FakeCoordinator(coordinator_pb2_grpc.CircuitServiceServicer):
    circuits: dict[str, cpb.Circuit] = field(default_factory=dict)
    by_request: dict[str, str] = field(default_factory=dict)
    tokens: list[tuple[str, str]] = field(default_factory=list)
    ports: Any = field(default_factory=lambda: itertools.count(10205))

    async def _authorized(self, context: Any) -> None:
        sent = dict(context.invocation_metadata() or ()).get("x-bai-internal-token")
        if sent != TOKEN:
            await context.abort_with_status(to_grpc_status(Unauthenticated("bad token")))

    async def CreateCircuit(
        self, request: cpb.CreateCircuitRequest, context: Any
    ) -> cpb.CreateCircuitResponse:
        await self._authorized(context)
        if not request.request_id or not request.routes:
            await context.abort_with_status(to_grpc_status(InvalidArgument([])))
        known = self.by_request.get(request.request_id)
        if known in self.circuits:
            return cpb.CreateCircuitResponse(circuit=self.circuits[known])
        port = next(self.ports)
        circuit = cpb.Circuit(
            id=str(uuid.uuid4()),
            app=request.app,
            protocol=request.protocol,
            app_mode=request.app_mode,
            frontend_mode=cpb.FRONTEND_MODE_PORT,
            worker="127.0.0.1:10205",
            port=port,
            url=f"http://127.0.0.1:{port}/",
            open_to_public=request.open_to_public,
            allowed_client_ips=request.allowed_client_ips,
            user_id=request.user_id,
            session_ids=request.session_ids,
            routes=request.routes,
        )
        self.circuits[circuit.id] = circuit
        self.by_request[request.request_id] = circuit.id
        return cpb.CreateCircuitResponse(circuit=circuit)

    async def ListCircuits(
        self, request: cpb.ListCircuitsRequest, context: Any
    ) -> cpb.ListCircuitsResponse:
        await self._authorized(context)
        found = [
            c
            for c in self.circuits.values()
            if not request.session_id or request.session_id in c.session_ids
        ]
        return cpb.ListCircuitsResponse(circuits=found)

    async def DeleteCircuit(
        self, request: cpb.DeleteCircuitRequest, context: Any
    ) -> cpb.DeleteCircuitResponse:
        await self._authorized(context)
        self.circuits.pop(request.circuit_id, None)
        return cpb.DeleteCircuitResponse()

    async def IssueAppToken(
        self, request: cpb.IssueAppTokenRequest, context: Any
    ) -> cpb.IssueAppTokenResponse:
        await self._authorized(context)
        if request.circuit_id not in self.circuits:
            await context.abort_with_status(to_grpc_status(NotFound("no such circuit")))
        token = f"app-token-{len(self.tokens)}"
        self.tokens.append((request.circuit_id, request.user_id))
        expires = Timestamp()
        expires.FromDatetime(datetime.now(UTC) + timedelta(seconds=request.ttl.seconds))
        return cpb.IssueAppTokenResponse(token=token, expires_at=expires)


@asynccontextmanager
async def serving_coordinator() -> AsyncIterator[tuple[FakeCoordinator, str]]:
    """The fake on a free port: (servicer, "host:port")."""
    fake = FakeCoordinator()
    server = grpc.aio.server()
    coordinator_pb2_grpc.add_CircuitServiceServicer_to_server(fake, server)
    port = server.add_insecure_port("127.0.0.1:0")
    await server.start()
    try:
        yield fake, f"127.0.0.1:{port}"
    finally:
        await server.stop(None)
