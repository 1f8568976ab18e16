"""A real coordinator and app-proxy Envoy, with the test manager's apps pointed at them."""

from __future__ import annotations

import contextlib
from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import grpc

from bai.api.coordinator.v1 import coordinator_pb2 as cpb
from bai.api.coordinator.v1 import coordinator_pb2_grpc
from bai.coordinator.main import start_coordinator
from bai.manager.apps.coordinator import CoordinatorClient
from bai.stack.testing import free_ports
from tests.coordinator.conftest import INTERNAL, PORTS, coordinator_config
from tests.coordinator.harness import free_port_block, start_envoy
from tests.manager.fixtures import ManagerHandle


@dataclass
class AppProxy:
    channel: grpc.aio.Channel

    async def circuits(self, session_id: str) -> list[cpb.Circuit]:
        reply = await coordinator_pb2_grpc.CircuitServiceStub(self.channel).ListCircuits(
            cpb.ListCircuitsRequest(session_id=session_id),
            metadata=[("x-bai-internal-token", INTERNAL)],
        )
        return list(reply.circuits)


@contextlib.asynccontextmanager
async def app_proxy(manager: ManagerHandle, stack: Any, tmp: Path) -> AsyncIterator[AppProxy]:
    ports = free_ports(3)
    authz_port, grpc_port, admin_port = ports
    config = coordinator_config(stack, tmp, ports, free_port_block(PORTS))
    running = await start_coordinator(config)
    envoy = None
    apps = manager.ctx.apps
    before = apps.coordinator
    try:
        envoy = await start_envoy(
            config.local_workers[0].authority,
            config.xds.directory,
            authz_port,
            admin_port,
            tmp,
            ads_port=grpc_port,
            internal_token=INTERNAL,
        )
        apps.coordinator = CoordinatorClient(f"127.0.0.1:{grpc_port}", INTERNAL, 10)
        async with grpc.aio.insecure_channel(f"127.0.0.1:{grpc_port}") as channel:
            yield AppProxy(channel)
    finally:
        if apps.coordinator is not before:
            await apps.coordinator.close()
            apps.coordinator = before
        if envoy is not None:
            envoy.stop()
        await running.stop()
