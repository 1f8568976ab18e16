"""Coordinator process: `bai coordinator start|migrate|envoy-bootstrap`.

Start-up order matters: migrate, rebuild circuits and workers from the
database, rewrite every worker's xDS files and ADS snapshot, and only then
answer ext_authz and gRPC (ADS included). Envoy keeps serving the last
configuration it accepted while the coordinator is down, whether it reads
files or an ADS stream.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import logging
import signal
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from pathlib import Path

import grpc
from envoy.service.discovery.v3 import ads_pb2_grpc

from bai.api.coordinator.v1 import coordinator_pb2_grpc
from bai.common.component import load_component_config
from bai.common.logs import setup_logging
from bai.common.server import RunningServer, ServerSpec, run_event_loop, start_server
from bai.coordinator.api.circuits import CircuitServicer
from bai.coordinator.api.workers import WorkerServicer
from bai.coordinator.authz.server import Authorizer, AuthzServer
from bai.coordinator.config import CoordinatorConfig, LocalWorkerConfig
from bai.coordinator.db.migrations import upgrade_async
from bai.coordinator.health import RouteHealthWatcher
from bai.coordinator.records import Worker
from bai.coordinator.repository import Repository, create_engine
from bai.coordinator.state import CoordinatorState
from bai.coordinator.tokens import cookie_key
from bai.coordinator.xds.ads import SERVICE as ADS_SERVICE
from bai.coordinator.xds.ads import AdsServicer
from bai.coordinator.xds.bootstrap import render_app_proxy_bootstrap
from bai.coordinator.xds.resources import RenderSettings

log = logging.getLogger("bai.coordinator")


def local_worker(lw: LocalWorkerConfig) -> Worker:
    return Worker(
        authority=lw.authority,
        frontend_mode=lw.frontend_mode,
        hostname=lw.hostname,
        port_start=lw.port_start,
        port_end=lw.port_end,
        wildcard_domain=lw.wildcard_domain,
        available_slots=lw.available_slots,
    )


@dataclass
class RunningCoordinator:
    config: CoordinatorConfig
    state: CoordinatorState
    server: RunningServer
    authz: AuthzServer
    stopping: bool = False
    tasks: list[asyncio.Task[None]] = field(default_factory=list)

    @property
    def grpc_port(self) -> int:
        return self.server.grpc_port

    @property
    def authz_port(self) -> int:
        return self.authz.port

    async def stop(self) -> None:
        self.stopping = True
        for task in self.tasks:
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task
        self.state.snapshots.close()
        await self.server.stop()
        await self.authz.stop()
        await self.state.repo.engine.dispose()


async def _every(seconds: float, step: Callable[[], Awaitable[object]]) -> None:
    while True:
        await asyncio.sleep(seconds)
        try:
            await step()
        except Exception:
            log.exception("periodic task failed")


async def start_coordinator(config: CoordinatorConfig) -> RunningCoordinator:
    """Everything `bai coordinator start` runs; tests start it in-process on free ports."""
    await upgrade_async(config.db.url, config.db.schema_name)
    repo = Repository(create_engine(config.db))
    render = RenderSettings(
        listen_address=config.xds.listen_address,
        health_interval_seconds=config.xds.health_interval_seconds,
        unhealthy_threshold=config.xds.unhealthy_threshold,
        connect_timeout_seconds=config.xds.connect_timeout_seconds,
        cookie_key=cookie_key(config.authz.app_token_secret),
    )
    state = CoordinatorState(
        repo,
        render,
        config.xds.directory.resolve(),
        config.authz.app_token_secret,
        config.heartbeat_interval_seconds,
        apply_timeout=config.xds.apply_timeout_seconds,
    )
    await state.load()
    locals_ = [local_worker(lw) for lw in config.local_workers]
    for worker in locals_:
        await state.register_worker(worker)
    authz = AuthzServer(
        Authorizer(
            find_by_id=state.circuit_by_id,
            find_by_host=state.circuit_by_host,
            find_worker=state.worker,
            spend_token=repo.spend_app_token,
            secret=config.authz.app_token_secret,
            cookie_key=render.cookie_key,
            cookie_ttl=config.authz.cookie_ttl_seconds,
        ),
        config.authz.bind,
        config.authz.port,
    )
    await authz.start()
    holder: list[RunningCoordinator] = []

    def stopping() -> bool:
        return bool(holder) and holder[0].stopping

    health = RouteHealthWatcher({lw.authority: lw.admin_url for lw in config.local_workers})
    circuits = CircuitServicer(state, health, config.internal_token, stopping)
    workers = WorkerServicer(state, config.internal_token, stopping)

    def register(server: grpc.aio.Server) -> None:
        coordinator_pb2_grpc.add_CircuitServiceServicer_to_server(circuits, server)
        coordinator_pb2_grpc.add_WorkerServiceServicer_to_server(workers, server)
        ads_pb2_grpc.add_AggregatedDiscoveryServiceServicer_to_server(
            AdsServicer(state.snapshots, config.internal_token), server
        )

    server = await start_server(
        ServerSpec(
            component="coordinator",
            bind=config.bind,
            grpc_port=config.grpc_port,
            metrics_bind=config.metrics_bind,
            metrics_port=config.metrics_port,
            service_names=[CircuitServicer.SERVICE, WorkerServicer.SERVICE, ADS_SERVICE],
            register=register,
        )
    )
    running = RunningCoordinator(config, state, server, authz)
    holder.append(running)

    async def keep_local_workers_alive() -> None:
        # Workers of this coordinator's own Envoy have no launcher to heartbeat them.
        for worker in locals_:
            await state.heartbeat(worker.authority)

    interval = config.heartbeat_interval_seconds
    running.tasks = [
        asyncio.create_task(_every(interval, state.sweep_lost)),
        # state.load() already removed what expired while no coordinator ran.
        asyncio.create_task(_every(config.expiry_sweep_seconds, state.reap_expired)),
    ]
    if locals_:
        running.tasks.append(asyncio.create_task(_every(interval, keep_local_workers_alive)))
    if health.admin_urls:
        probe = config.xds.health_interval_seconds
        running.tasks.append(asyncio.create_task(_every(probe, health.poll)))
    log.info(
        "coordinator serving",
        extra={"grpc_port": server.grpc_port, "authz_port": authz.port},
    )
    return running


def _reachable(bind: str) -> str:
    """Where an Envoy on this host reaches a server bound to `bind`."""
    return "127.0.0.1" if bind in ("0.0.0.0", "::", "") else bind


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="bai coordinator", description="The app-proxy coordinator."
    )
    parser.add_argument(
        "--config", type=Path, help="TOML config file (BAI_COORDINATOR__* overrides)"
    )
    sub = parser.add_subparsers(dest="command", required=True)
    sub.add_parser(
        "start",
        help="serve CircuitService, WorkerService and Envoy's ADS (gRPC), ext_authz (HTTP) "
        "and the same xDS resources as files",
    )
    sub.add_parser("migrate", help="bring the coordinator's schema up to date")
    boot = sub.add_parser(
        "envoy-bootstrap", help="print the bootstrap of an app-proxy Envoy for a worker"
    )
    boot.add_argument("--authority", required=True, help='the worker\'s "host:port"')
    boot.add_argument("--admin-port", type=int, default=10203)
    boot.add_argument(
        "--xds",
        choices=("ads", "files"),
        default="ads",
        help="listeners and clusters over gRPC from this coordinator (ads, default) or "
        "from files in its xds.directory (files: Envoy must share that directory)",
    )
    args = parser.parse_args(argv)

    async def configured() -> CoordinatorConfig:
        return await load_component_config(
            CoordinatorConfig, "coordinator", args.config, "BAI_COORDINATOR"
        )

    if args.command == "envoy-bootstrap":
        config = asyncio.run(configured())
        ads = (_reachable(config.bind), config.grpc_port) if args.xds == "ads" else None
        print(
            render_app_proxy_bootstrap(
                args.authority,
                config.xds.directory,
                (_reachable(config.authz.bind), config.authz.port),
                args.admin_port,
                ads_addr=ads,
                internal_token=config.internal_token,
            ),
            end="",
        )
        return 0
    if args.command == "migrate":
        config = asyncio.run(configured())
        asyncio.run(upgrade_async(config.db.url, config.db.schema_name))
        return 0

    async def run() -> None:
        config = await configured()
        setup_logging("coordinator", config.log_level)
        log.info(
            "starting",
            extra={
                "config": config.model_dump(
                    mode="json", exclude={"internal_token": True, "authz": {"app_token_secret"}}
                )
            },
        )
        running = await start_coordinator(config)
        stop = asyncio.Event()
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGTERM, signal.SIGINT):
            loop.add_signal_handler(sig, stop.set)
        await stop.wait()
        await running.stop()

    run_event_loop(run())
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
