"""Running a bai gRPC process: health, reflection, metrics, graceful SIGTERM."""

from __future__ import annotations

import asyncio
import gc
import logging
import signal
from collections.abc import Awaitable, Callable, Coroutine, Sequence
from dataclasses import dataclass, field
from typing import Any, TypeVar

import grpc
import uvloop
from grpc_health.v1 import health, health_pb2, health_pb2_grpc
from grpc_reflection.v1alpha import reflection

from bai.common.metrics import JsonEndpoint, MetricsServer

log = logging.getLogger(__name__)
T = TypeVar("T")


@dataclass
class ServerSpec:
    component: str
    bind: str
    grpc_port: int
    metrics_bind: str
    metrics_port: int
    # Full names of the services added by `register`, for health and reflection.
    service_names: Sequence[str]
    register: Callable[[grpc.aio.Server], None]
    json_endpoints: dict[str, JsonEndpoint] = field(default_factory=dict)
    # More ports serving the same services (the storage proxy's manager port).
    extra_ports: Sequence[int] = ()
    grace_seconds: float = 5.0
    options: Sequence[tuple[str, int]] = (
        ("grpc.max_receive_message_length", 16 * 1024 * 1024),
        ("grpc.so_reuseport", 0),
    )


@dataclass
class RunningServer:
    server: grpc.aio.Server
    health: health.aio.HealthServicer
    metrics: MetricsServer
    grpc_port: int
    spec: ServerSpec

    async def stop(self) -> None:
        log.info("shutting down", extra={"grace_seconds": self.spec.grace_seconds})
        await self.health.enter_graceful_shutdown()
        await self.server.stop(self.spec.grace_seconds)
        self.metrics.stop()


async def start_server(spec: ServerSpec) -> RunningServer:
    server = grpc.aio.server(options=list(spec.options))
    spec.register(server)
    health_servicer = health.aio.HealthServicer()
    health_pb2_grpc.add_HealthServicer_to_server(health_servicer, server)
    names = [*spec.service_names, health_pb2.DESCRIPTOR.services_by_name["Health"].full_name]
    reflection.enable_server_reflection([*names, reflection.SERVICE_NAME], server)
    port = server.add_insecure_port(f"{spec.bind}:{spec.grpc_port}")
    if port == 0:
        raise OSError(f"cannot bind gRPC port {spec.bind}:{spec.grpc_port}")
    for extra in spec.extra_ports:
        if server.add_insecure_port(f"{spec.bind}:{extra}") == 0:
            raise OSError(f"cannot bind gRPC port {spec.bind}:{extra}")
    metrics = MetricsServer(spec.metrics_bind, spec.metrics_port, spec.json_endpoints)
    await server.start()
    # Everything allocated so far lives as long as the process: keep it out of
    # the cyclic collector's generations so collections stay short.
    gc.freeze()
    metrics.start()
    for name in ("", *spec.service_names):
        await health_servicer.set(name, health_pb2.HealthCheckResponse.SERVING)
    log.info(
        "serving",
        extra={"grpc_port": port, "metrics_port": metrics.port, "component": spec.component},
    )
    return RunningServer(server, health_servicer, metrics, port, spec)


def run_event_loop(main: Coroutine[Any, Any, T]) -> T:
    """Run a component's main coroutine on uvloop (grpc.aio supports it; the
    authenticated request path measured ~10% faster than on asyncio's loop)."""
    return uvloop.run(main)


async def run_until_signalled(
    spec: ServerSpec, on_stop: Callable[[], Awaitable[None]] | None = None
) -> None:
    """Serve until SIGTERM/SIGINT, then drain in-flight calls and clean up."""
    running = await start_server(spec)
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)
    await stop.wait()
    await running.stop()
    if on_stop is not None:
        await on_stop()
