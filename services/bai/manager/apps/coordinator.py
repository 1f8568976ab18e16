"""The manager's client for the app-proxy Coordinator's CircuitService.

One channel, opened on first use; calls carry the internal token and a
deadline; failures come back as bai errors (an unreachable Coordinator is
DEPENDENCY_UNAVAILABLE, anything else keeps its code and reason).
"""

from __future__ import annotations

from datetime import datetime

import grpc
from google.protobuf.duration_pb2 import Duration

from bai.api.coordinator.v1 import coordinator_pb2 as cpb
from bai.api.coordinator.v1 import coordinator_pb2_grpc
from bai.common import errors
from bai.common.peer_errors import error_from_peer
from bai.common.shared_secret import INTERNAL_TOKEN_HEADER

LIST_PAGE_SIZE = 1000


class CoordinatorClient:
    def __init__(self, address: str, internal_token: str, call_timeout: float) -> None:
        self.address = address
        self._metadata = ((INTERNAL_TOKEN_HEADER, internal_token),) if internal_token else ()
        self._timeout = call_timeout
        self._channel: grpc.aio.Channel | None = None
        self._stub: coordinator_pb2_grpc.CircuitServiceAsyncStub | None = None

    def _circuits(self) -> coordinator_pb2_grpc.CircuitServiceAsyncStub:
        if not self.address:
            raise errors.Unavailable(
                "apps are not available: no app-proxy coordinator is configured",
                reason="DEPENDENCY_UNAVAILABLE",
            )
        if self._stub is None:
            self._channel = grpc.aio.insecure_channel(self.address)
            self._stub = coordinator_pb2_grpc.CircuitServiceStub(self._channel)
        return self._stub

    def _error(self, exc: grpc.aio.AioRpcError) -> errors.BaiError:
        return error_from_peer(
            exc, unreachable_reason="DEPENDENCY_UNAVAILABLE", peer="the app-proxy coordinator"
        )

    async def create_circuit(self, request: cpb.CreateCircuitRequest) -> cpb.Circuit:
        stub = self._circuits()
        try:
            reply = await stub.CreateCircuit(
                request, metadata=self._metadata, timeout=self._timeout
            )
        except grpc.aio.AioRpcError as exc:
            raise self._error(exc) from exc
        return reply.circuit

    async def circuits_of_session(self, session_id: str) -> list[cpb.Circuit]:
        stub = self._circuits()
        out: list[cpb.Circuit] = []
        page_token = ""
        try:
            while True:
                reply = await stub.ListCircuits(
                    cpb.ListCircuitsRequest(
                        session_id=session_id, page_size=LIST_PAGE_SIZE, page_token=page_token
                    ),
                    metadata=self._metadata,
                    timeout=self._timeout,
                )
                out.extend(reply.circuits)
                page_token = reply.next_page_token
                if not page_token:
                    return out
        except grpc.aio.AioRpcError as exc:
            raise self._error(exc) from exc

    async def delete_circuit(self, circuit_id: str) -> None:
        """Idempotent on the Coordinator's side: a missing circuit is fine."""
        stub = self._circuits()
        try:
            await stub.DeleteCircuit(
                cpb.DeleteCircuitRequest(circuit_id=circuit_id),
                metadata=self._metadata,
                timeout=self._timeout,
            )
        except grpc.aio.AioRpcError as exc:
            raise self._error(exc) from exc

    async def issue_token(
        self, circuit_id: str, user_id: str, ttl_seconds: float
    ) -> tuple[str, datetime]:
        stub = self._circuits()
        ttl = Duration()
        ttl.FromMilliseconds(int(ttl_seconds * 1000))
        try:
            reply = await stub.IssueAppToken(
                cpb.IssueAppTokenRequest(circuit_id=circuit_id, user_id=user_id, ttl=ttl),
                metadata=self._metadata,
                timeout=self._timeout,
            )
        except grpc.aio.AioRpcError as exc:
            raise self._error(exc) from exc
        return reply.token, reply.expires_at.ToDatetime()

    async def close(self) -> None:
        if self._channel is not None:
            await self._channel.close()
            self._channel = None
            self._stub = None
