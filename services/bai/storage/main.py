"""Storage proxy process: `bai storage start [--config FILE]`.

Serves FileService for clients (grpc_port, 6021, reached through Envoy) and
StorageService for the manager (manager_port, 6022) on two gRPC servers,
each with health and reflection; the same transfers as plain HTTP on
http_port (6023, reached through Envoy under /storage/v1/); /metrics on
metrics_port. A sweeper
removes abandoned partial uploads. On SIGTERM it stops taking calls and
drains the running ones; partial uploads stay for the client to resume.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import logging
import signal
from dataclasses import dataclass
from pathlib import Path

import grpc
from grpc_health.v1 import health, health_pb2, health_pb2_grpc
from grpc_reflection.v1alpha import reflection

from bai.api.storage.v1 import file_pb2_grpc, storage_pb2_grpc
from bai.common.component import load_component_config
from bai.common.logs import setup_logging
from bai.common.server import RunningServer, ServerSpec, run_event_loop, start_server
from bai.storage.api.file_servicer import FileServicer
from bai.storage.api.storage_servicer import StorageServicer
from bai.storage.config import StorageConfig
from bai.storage.context import StorageContext
from bai.storage.http.server import TransferHttpServer
from bai.storage.memory import limit_malloc_arenas
from bai.storage.transfers.sweeper import sweep_forever

log = logging.getLogger("bai.storage")
SERVER_OPTIONS = [
    ("grpc.max_receive_message_length", 16 * 1024 * 1024),
    ("grpc.so_reuseport", 0),
]


@dataclass
class RunningStorage:
    ctx: StorageContext
    client_server: RunningServer
    manager_server: grpc.aio.Server
    manager_port: int
    http_server: TransferHttpServer
    sweeper: asyncio.Task[None]

    @property
    def grpc_port(self) -> int:
        return self.client_server.grpc_port

    @property
    def http_port(self) -> int:
        return self.http_server.port

    async def stop(self) -> None:
        self.ctx.shutting_down = True
        self.sweeper.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await self.sweeper
        await self.manager_server.stop(self.client_server.spec.grace_seconds)
        await self.http_server.stop()
        await self.client_server.stop()
        await self.ctx.drain()


async def start_manager_server(
    ctx: StorageContext, bind: str, port: int
) -> tuple[grpc.aio.Server, int]:
    server = grpc.aio.server(options=SERVER_OPTIONS)
    storage_pb2_grpc.add_StorageServiceServicer_to_server(StorageServicer(ctx), server)
    health_servicer = health.aio.HealthServicer()
    health_pb2_grpc.add_HealthServicer_to_server(health_servicer, server)
    names = [StorageServicer.SERVICE, health_pb2.DESCRIPTOR.services_by_name["Health"].full_name]
    reflection.enable_server_reflection([*names, reflection.SERVICE_NAME], server)
    bound = server.add_insecure_port(f"{bind}:{port}")
    if bound == 0:
        raise OSError(f"cannot bind gRPC port {bind}:{port}")
    await server.start()
    for name in ("", StorageServicer.SERVICE):
        await health_servicer.set(name, health_pb2.HealthCheckResponse.SERVING)
    return server, bound


async def start_storage(config: StorageConfig) -> RunningStorage:
    """Everything `bai storage start` runs (tests call it in-process)."""
    ctx = StorageContext.from_config(config)
    manager_server, manager_port = await start_manager_server(ctx, config.bind, config.manager_port)
    file_servicer = FileServicer(ctx)

    def register(server: grpc.aio.Server) -> None:
        file_pb2_grpc.add_FileServiceServicer_to_server(file_servicer, server)

    client_server = await start_server(
        ServerSpec(
            component="storage",
            bind=config.bind,
            grpc_port=config.grpc_port,
            metrics_bind=config.metrics_bind,
            metrics_port=config.metrics_port,
            service_names=[FileServicer.SERVICE],
            register=register,
            options=SERVER_OPTIONS,
        )
    )
    http_server = TransferHttpServer(
        ctx, config.bind, config.http_port, client_server.spec.grace_seconds
    )
    try:
        await http_server.start()
    except OSError:
        await client_server.stop()
        await manager_server.stop(None)
        raise
    sweeper = asyncio.get_running_loop().create_task(
        sweep_forever(
            ctx.pool, config.upload_staging_ttl_seconds, config.upload_sweep_interval_seconds
        )
    )
    log.info(
        "storage proxy serving",
        extra={
            "grpc_port": client_server.grpc_port,
            "manager_port": manager_port,
            "http_port": http_server.port,
        },
    )
    return RunningStorage(ctx, client_server, manager_server, manager_port, http_server, sweeper)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="bai storage", description="The bai storage proxy.")
    parser.add_argument("--config", type=Path, help="TOML config file (BAI_STORAGE__* overrides)")
    sub = parser.add_subparsers(dest="command", required=True)
    sub.add_parser(
        "start",
        help="serve FileService and HTTP transfers (clients) and StorageService (manager)",
    )
    args = parser.parse_args(argv)
    limit_malloc_arenas()

    async def run() -> None:
        config = await load_component_config(StorageConfig, "storage", args.config, "BAI_STORAGE")
        setup_logging("storage", config.log_level)
        log.info(
            "starting",
            extra={
                "config": config.model_dump(mode="json", exclude={"jwt_secret", "manager_token"})
            },
        )
        storage = await start_storage(config)
        stop = asyncio.Event()
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGTERM, signal.SIGINT):
            loop.add_signal_handler(sig, stop.set)
        await stop.wait()
        await storage.stop()

    run_event_loop(run())
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
