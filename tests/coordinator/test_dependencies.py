"""An unreachable database answers DEPENDENCY_UNAVAILABLE, not INTERNAL."""

from __future__ import annotations

import uuid
from pathlib import Path

import grpc
import pytest

from bai.api.coordinator.v1 import coordinator_pb2 as pb
from bai.api.coordinator.v1 import coordinator_pb2_grpc
from bai.coordinator.api.circuits import CircuitServicer
from bai.coordinator.config import DatabaseConfig
from bai.coordinator.health import RouteHealthWatcher
from bai.coordinator.records import Worker
from bai.coordinator.repository import Repository, create_engine
from bai.coordinator.state import CoordinatorState
from bai.coordinator.xds.resources import RenderSettings
from bai.stack.testing import free_ports
from tests.rpc_errors import reason_of


async def test_database_down_is_dependency_unavailable(tmp_path: Path) -> None:
    (dead,) = free_ports(1)
    engine = create_engine(DatabaseConfig(url=f"postgresql+asyncpg://x:y@127.0.0.1:{dead}/z"))
    settings = RenderSettings("127.0.0.1", 1.0, 2, 1.0, b"k" * 32)
    state = CoordinatorState(Repository(engine), settings, tmp_path, "s" * 32, 10.0)
    state.workers["w:1"] = Worker("w:1", "port", "h", port_start=5, port_end=6)
    server = grpc.aio.server()
    coordinator_pb2_grpc.add_CircuitServiceServicer_to_server(
        CircuitServicer(state, RouteHealthWatcher({}), "", lambda: False), server
    )
    port = server.add_insecure_port("127.0.0.1:0")
    await server.start()
    try:
        async with grpc.aio.insecure_channel(f"127.0.0.1:{port}") as channel:
            request = pb.CreateCircuitRequest(
                request_id=str(uuid.uuid4()),
                app="a",
                open_to_public=True,
                routes=[pb.Route(route_id="k", kernel_host="127.0.0.1", kernel_port=9)],
            )
            with pytest.raises(grpc.aio.AioRpcError) as caught:
                await coordinator_pb2_grpc.CircuitServiceStub(channel).CreateCircuit(request)
        assert caught.value.code() == grpc.StatusCode.UNAVAILABLE
        assert reason_of(caught.value) == "DEPENDENCY_UNAVAILABLE"
    finally:
        await server.stop(0)
        await engine.dispose()
