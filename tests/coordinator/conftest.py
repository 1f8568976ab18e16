"""A real coordinator (in this process, over the test stack's PostgreSQL, in a schema of
its own) programming a real app-proxy Envoy over ADS, and again through filesystem xDS."""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path

import grpc
import pytest

from bai.api.common.v1 import session_pb2 as common
from bai.api.coordinator.v1 import coordinator_pb2 as pb
from bai.api.coordinator.v1 import coordinator_pb2_grpc
from bai.common.component import EtcdConfig
from bai.coordinator.config import (
    AuthzConfig,
    CoordinatorConfig,
    DatabaseConfig,
    LocalWorkerConfig,
    XdsConfig,
)
from bai.coordinator.main import RunningCoordinator, start_coordinator
from bai.stack.testing import free_ports
from tests.coordinator.harness import Envoy, free_port_block, start_envoy

SECRET = "test-app-token-secret-of-32-bytes-at-least"
INTERNAL = "test-internal-token"
PORTS = 32


def coordinator_config(stack, tmp: Path, ports: list[int], base: int):  # type: ignore[no-untyped-def]
    authz_port, grpc_port, admin_port = ports
    return CoordinatorConfig(
        grpc_port=grpc_port,
        metrics_port=0,
        etcd=EtcdConfig(enabled=False),
        db=DatabaseConfig(url=stack.pg_dsn, schema_name=f"coord_{uuid.uuid4().hex[:10]}"),
        authz=AuthzConfig(port=authz_port, app_token_secret=SECRET),
        xds=XdsConfig(
            directory=tmp / "xds", listen_address="127.0.0.1", health_interval_seconds=0.5
        ),
        internal_token=INTERNAL,
        local_workers=[
            LocalWorkerConfig(
                authority=f"127.0.0.1:{base}",
                hostname="127.0.0.1",
                port_start=base,
                port_end=base + PORTS - 1,
                admin_url=f"http://127.0.0.1:{admin_port}",
            )
        ],
    )


@dataclass
class Proxy:
    config: CoordinatorConfig
    running: RunningCoordinator
    envoy: Envoy
    channel: grpc.aio.Channel

    @property
    def circuits(self) -> coordinator_pb2_grpc.CircuitServiceStub:
        return coordinator_pb2_grpc.CircuitServiceStub(self.channel)

    @property
    def workers(self) -> coordinator_pb2_grpc.WorkerServiceStub:
        return coordinator_pb2_grpc.WorkerServiceStub(self.channel)

    @property
    def worker(self) -> str:
        return self.config.local_workers[0].authority

    async def restart_only(self) -> RunningCoordinator:
        """Start a new coordinator on the same config (after the old one stopped)."""
        return await start_coordinator(self.config)

    async def create(
        self,
        *ports: int,
        user: str = "alice",
        public: bool = False,
        protocol: int = common.APP_PROTOCOL_HTTP,
        allowed: tuple[str, ...] = (),
        app_mode: int = pb.APP_MODE_INTERACTIVE,
    ) -> pb.Circuit:
        routes = [
            pb.Route(route_id=f"r{i}", kernel_host="127.0.0.1", kernel_port=port)
            for i, port in enumerate(ports)
        ]
        reply = await self.circuits.CreateCircuit(
            pb.CreateCircuitRequest(
                request_id=str(uuid.uuid4()),
                app="web",
                protocol=protocol,  # type: ignore[arg-type]
                app_mode=app_mode,  # type: ignore[arg-type]
                open_to_public=public,
                allowed_client_ips=list(allowed),
                user_id=user,
                session_ids=["s-1"],
                routes=routes,
            ),
            metadata=internal(),
        )
        return reply.circuit

    async def token(self, circuit: pb.Circuit, user: str = "") -> str:
        reply = await self.circuits.IssueAppToken(
            pb.IssueAppTokenRequest(circuit_id=circuit.id, user_id=user), metadata=internal()
        )
        return reply.token

    async def delete(self, circuit: pb.Circuit) -> None:
        await self.circuits.DeleteCircuit(
            pb.DeleteCircuitRequest(circuit_id=circuit.id), metadata=internal()
        )


def internal() -> list[tuple[str, str]]:
    return [("x-bai-internal-token", INTERNAL)]


@pytest.fixture(scope="module", params=["ads", "files"])
async def proxy(
    stack, tmp_path_factory: pytest.TempPathFactory, request: pytest.FixtureRequest
) -> AsyncIterator[Proxy]:  # type: ignore[no-untyped-def]
    """Every test runs against an Envoy fed over ADS and one fed from files."""
    tmp = tmp_path_factory.mktemp("coordinator")
    ports = free_ports(3)
    authz_port, grpc_port, admin_port = ports
    config = coordinator_config(stack, tmp, ports, free_port_block(PORTS))
    running = await start_coordinator(config)
    try:
        envoy = await start_envoy(
            config.local_workers[0].authority,
            config.xds.directory,
            authz_port,
            admin_port,
            tmp,
            ads_port=grpc_port if request.param == "ads" else None,
            internal_token=INTERNAL,
        )
    except BaseException:
        await running.stop()
        raise
    channel = grpc.aio.insecure_channel(f"127.0.0.1:{grpc_port}")
    handle = Proxy(config, running, envoy, channel)
    try:
        yield handle
    finally:
        await channel.close()
        envoy.stop()
        await handle.running.stop()
