#!/usr/bin/env python3
"""bench/app_proxy: a small HTTP app through the app-proxy Envoy versus directly.

Boots a throwaway PostgreSQL, a coordinator process (`python -m bai.coordinator
start`, one local PORT-mode worker), an app-proxy Envoy fed by the coordinator
over ADS and, standing in for a kernel's app, a small aiohttp app in its own
process. One private circuit points at the app; the client presents the
circuit cookie (as a browser does after redeeming its token), so each proxied
request passes Envoy's RBAC-free cookie check (jwt_authn, HS256) and router.
For reference, a bare Envoy (static config, only the router filter, same app,
same Envoy flags and so the same --concurrency) runs beside it: the gap between
it and direct is Envoy itself on this machine, the rest is our filters.

  * Throughput: wrk (`-t1 -cC -dDs`, the cookie as a header) drives C keep-alive
    connections for D seconds, directly to the app's port, through the circuit's
    port (cookie and public) and through the bare Envoy, alternating for R
    rounds; requests/s is the mean over the rounds. Any non-2xx answer fails the
    bench. Without wrk (and not root to install it) a Python client does it and
    the output says so. Target: proxied (cookie) >= 0.8x direct. Each path
    also reports how many of the machine's cores were busy under its load
    (/proc/stat): a proxied path that keeps every core busy is bound by the
    machine's CPU, which the app, the load client and Envoy share here.
  * Latency: N sequential GETs on one connection each way (interleaved, Python
    client); p50/p99. Target: proxied p50 - direct p50 <= 1 ms.
  * Registration: K times, CreateCircuit, then GET through Envoy until the
    first 200 (polling every 1 ms); the time from the call to that answer
    (CreateCircuit answers once Envoy has ACKed the circuit, so the first GET
    normally succeeds). Target: p50 < 100 ms. Each circuit is deleted
    (untimed) afterwards.

The last line is the JSON summary: the value is the cookie path's requests/s,
its ratio to direct is "ratio"; "bare_envoy_rps"/"bare_envoy_ratio" are the
reference; "machine_busy_cores" is per path; "load_client" says which client
measured throughput.

    python bench/app_proxy.py [--seconds 5] [--rounds 2] [--connections 16]
                              [--latency 3000] [--registrations 20] [--quick]
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import random
import socket
import sys
import time
import uuid
from collections.abc import Iterator
from contextlib import ExitStack, contextmanager
from dataclasses import dataclass, field
from pathlib import Path

import grpc
from bare_envoy import bare_envoy
from cpu_ledger import machine_busy_seconds, process_seconds
from http_load import Load, first_success, latencies, load_client, python_throughput
from latency import p50, percentile, rounded, summary_line
from platform_stack import bench_dir, process, wait_ready

from bai.api.coordinator.v1 import coordinator_pb2 as pb
from bai.api.coordinator.v1 import coordinator_pb2_grpc
from bai.coordinator.tokens import cookie_key, issue_cookie
from bai.coordinator.xds.bootstrap import app_proxy_process_argv, render_app_proxy_bootstrap
from bai.coordinator.xds.filters import cookie_name
from bai.stack.testing import ThrowawayStack, free_ports

SECRET = "bench-app-proxy-secret-of-32-bytes-or-more"
INTERNAL = "bench-internal-token"
METADATA = [("x-bai-internal-token", INTERNAL)]
PORT_COUNT = 64


# --- the stand-in app (run as `app_proxy.py --serve-app PORT`) ---


def serve_app(port: int) -> None:
    from aiohttp import web

    body = json.dumps({"ok": True, "pad": "x" * 200})

    async def index(request: web.Request) -> web.Response:
        return web.Response(text=body, content_type="application/json")

    app = web.Application()
    app.router.add_get("/", index)
    web.run_app(app, host="127.0.0.1", port=port, access_log=None, print=None)


# --- the platform pieces ---


@dataclass(frozen=True)
class Platform:
    address: str  # the coordinator's gRPC
    app_port: int
    envoy_pid: int
    bare_port: int
    bare_pid: int


@contextmanager
def booted(stack: ThrowawayStack, logs: Path) -> Iterator[Platform]:
    """Coordinator, its Envoy, the bare Envoy and the app."""
    grpc_port, metrics_port, authz_port, admin_port, app_port, bare_port = free_ports(6)
    base = _port_block()
    authority = f"127.0.0.1:{base}"
    xds = logs / "xds"
    worker = {"authority": authority, "port_start": base, "port_end": base + PORT_COUNT - 1}
    env = {
        "BAI_COORDINATOR__ETCD__ENABLED": "false",
        "BAI_COORDINATOR__DB__URL": stack.pg_dsn,
        "BAI_COORDINATOR__GRPC_PORT": str(grpc_port),
        "BAI_COORDINATOR__METRICS_PORT": str(metrics_port),
        "BAI_COORDINATOR__AUTHZ__PORT": str(authz_port),
        "BAI_COORDINATOR__AUTHZ__APP_TOKEN_SECRET": SECRET,
        "BAI_COORDINATOR__XDS__DIRECTORY": str(xds),
        "BAI_COORDINATOR__XDS__LISTEN_ADDRESS": "127.0.0.1",
        "BAI_COORDINATOR__INTERNAL_TOKEN": INTERNAL,
        "BAI_COORDINATOR__LOCAL_WORKERS": json.dumps([worker]),
        "BAI_COORDINATOR__LOG_LEVEL": "warning",
    }
    bootstrap = logs / "envoy.json"
    bootstrap.write_text(
        render_app_proxy_bootstrap(
            authority,
            xds,
            ("127.0.0.1", authz_port),
            admin_port,
            ads_addr=("127.0.0.1", grpc_port),
            internal_token=INTERNAL,
        )
    )
    coordinator = [sys.executable, "-m", "bai.coordinator", "start"]
    app = [sys.executable, __file__, "--serve-app", str(app_port)]
    envoy = app_proxy_process_argv(bootstrap, log_level="warning")
    with (
        process(coordinator, env, logs / "coordinator.log") as coordinator_proc,
        process(envoy, {}, logs / "envoy.log") as envoy_proc,
        bare_envoy(bare_port, app_port, logs) as bare_proc,
        process(app, {}, logs / "app.log"),
    ):
        address = f"127.0.0.1:{grpc_port}"
        wait_ready(address, coordinator_proc, logs / "coordinator.log")
        asyncio.run(first_success(app_port, {}))
        yield Platform(address, app_port, envoy_proc.pid, bare_port, bare_proc.pid)


def _port_block() -> int:
    """The first of PORT_COUNT consecutive ports that were all free a moment ago."""
    for _ in range(200):
        base = random.randint(20000, 45000)
        with ExitStack() as stack:
            try:
                for port in range(base, base + PORT_COUNT):
                    stack.enter_context(socket.socket()).bind(("127.0.0.1", port))
            except OSError:
                continue
            return base
    raise RuntimeError(f"no block of {PORT_COUNT} free ports")


async def create_circuit(
    stub: coordinator_pb2_grpc.CircuitServiceStub, app_port: int, public: bool = False
) -> pb.Circuit:
    reply = await stub.CreateCircuit(
        pb.CreateCircuitRequest(
            request_id=str(uuid.uuid4()),
            app="bench",
            user_id="bench-user",
            open_to_public=public,
            routes=[pb.Route(route_id="k", kernel_host="127.0.0.1", kernel_port=app_port)],
        ),
        metadata=METADATA,
    )
    return reply.circuit


def cookie_for(circuit: pb.Circuit) -> dict[str, str]:
    value = issue_cookie(cookie_key(SECRET), circuit.id, "bench-user", 3600)
    return {"cookie": f"{cookie_name(circuit.id)}={value}"}


@dataclass
class Measured:
    name: str
    port: int
    headers: dict[str, str]
    pid: int  # the Envoy on the path (0: none)
    rps: list[float] = field(default_factory=list)
    ms: list[float] = field(default_factory=list)
    envoy_cpu: float = 0.0
    requests: float = 0.0
    # CPU-seconds the whole machine was busy under this path's load, and for how long.
    machine_cpu: float = 0.0
    loaded_s: float = 0.0

    @property
    def mean_rps(self) -> float:
        return sum(self.rps) / len(self.rps)


async def registrations(
    stub: coordinator_pb2_grpc.CircuitServiceStub, app_port: int, n: int
) -> list[float]:
    times: list[float] = []
    for _ in range(n):
        started = time.perf_counter()
        circuit = await create_circuit(stub, app_port)
        await asyncio.wait_for(first_success(circuit.port, cookie_for(circuit)), 30)
        times.append((time.perf_counter() - started) * 1000)
        await stub.DeleteCircuit(pb.DeleteCircuitRequest(circuit_id=circuit.id), metadata=METADATA)
    return times


async def measure(platform: Platform, load: Load, args: argparse.Namespace) -> dict[str, object]:
    app_port = platform.app_port
    async with grpc.aio.insecure_channel(platform.address) as channel:
        stub = coordinator_pb2_grpc.CircuitServiceStub(channel)
        registration = await registrations(stub, app_port, args.registrations)
        private = await create_circuit(stub, app_port)
        public = await create_circuit(stub, app_port, public=True)
    paths = [
        Measured("direct", app_port, {}, 0),
        Measured("envoy (cookie)", private.port, cookie_for(private), platform.envoy_pid),
        Measured("envoy (public)", public.port, {}, platform.envoy_pid),
        Measured("bare envoy", platform.bare_port, {}, platform.bare_pid),
    ]
    for path in paths:
        await asyncio.wait_for(first_success(path.port, path.headers), 30)
        await python_throughput(path.port, path.headers, args.connections, 0.3)  # warm-up
    print(f"throughput client: {load.client} ({load.wrk or 'wrk not found'})")
    # Alternate the paths so that drift (other load on the machine) hits all alike.
    for _ in range(args.rounds):
        for path in paths:
            cpu_before = process_seconds(path.pid) if path.pid else 0.0
            machine_before = machine_busy_seconds()
            started = time.perf_counter()
            rps = await load.rps(path.port, path.headers, args.connections, args.seconds)
            elapsed = time.perf_counter() - started
            path.machine_cpu += machine_busy_seconds() - machine_before
            path.loaded_s += elapsed
            path.rps.append(rps)
            if path.pid:
                path.envoy_cpu += process_seconds(path.pid) - cpu_before
            path.requests += rps * elapsed
    chunk = max(1, args.latency // 10)
    for _ in range(10):
        for path in paths:
            path.ms += await latencies(path.port, path.headers, chunk)

    direct, cookie, open_, bare = paths
    ratio = cookie.mean_rps / direct.mean_rps
    added = p50(cookie.ms) - p50(direct.ms)
    for path in paths:
        cpu_us = path.envoy_cpu / path.requests * 1e6 if path.pid else float("nan")
        print(
            f"{path.name:<16} {path.mean_rps:9.0f} req/s  ({path.mean_rps / direct.mean_rps:.2f}x)"
            f"  p50 {p50(path.ms):6.3f} ms  p99 {percentile(path.ms, 99):6.3f} ms"
            f"  envoy cpu {cpu_us:6.1f} us/req"
            f"  machine busy {path.machine_cpu / path.loaded_s:.2f} of {os.cpu_count()} cores"
        )
    print(
        f"throughput ratio (cookie) {ratio:.2f} (target >= 0.8); added p50 {added:.3f} ms"
        f" (target <= 1 ms); bare envoy {bare.mean_rps / direct.mean_rps:.2f}x direct,"
        f" cookie path {cookie.mean_rps / bare.mean_rps:.2f}x bare envoy"
    )
    print(summary_line("registration -> first 200", registration) + " (target p50 < 100 ms)")
    ok = ratio >= 0.8 and added <= 1.0 and p50(registration) < 100
    return {
        "bench": "app_proxy",
        "value": round(cookie.mean_rps, 1),
        "unit": "requests/s",
        "baseline": round(direct.mean_rps, 1),
        "ratio": round(ratio, 3),
        "target": 0.8,
        "ok": ok,
        "connections": args.connections,
        "load_client": load.client,
        "cpus": os.cpu_count(),
        "public_rps": round(open_.mean_rps, 1),
        "public_ratio": round(open_.mean_rps / direct.mean_rps, 3),
        "bare_envoy_rps": round(bare.mean_rps, 1),
        "bare_envoy_ratio": round(bare.mean_rps / direct.mean_rps, 3),
        "envoy_cpu_us_per_request": rounded(cookie.envoy_cpu / cookie.requests * 1e6, 1),
        "machine_busy_cores": {p.name: round(p.machine_cpu / p.loaded_s, 2) for p in paths},
        "direct_p50_ms": rounded(p50(direct.ms), 3),
        "direct_p99_ms": rounded(percentile(direct.ms, 99), 3),
        "proxy_p50_ms": rounded(p50(cookie.ms), 3),
        "proxy_p99_ms": rounded(percentile(cookie.ms, 99), 3),
        "added_p50_ms": rounded(added, 3),
        "added_p50_target_ms": 1.0,
        "registration_p50_ms": rounded(p50(registration), 1),
        "registration_max_ms": rounded(max(registration, default=float("nan")), 1),
        "registration_target_ms": 100,
    }


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--seconds", type=float, default=5.0)
    parser.add_argument("--rounds", type=int, default=2)
    parser.add_argument("--connections", type=int, default=16)
    parser.add_argument("--latency", type=int, default=3000, help="sequential requests per path")
    parser.add_argument("--registrations", type=int, default=20)
    parser.add_argument("--quick", action="store_true", help="tiny sizes (smoke test)")
    parser.add_argument("--serve-app", type=int, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.serve_app:
        serve_app(args.serve_app)
        return 0
    if args.quick:
        args.seconds, args.rounds, args.latency, args.registrations = 0.3, 1, 100, 2
    load = load_client()
    logs = bench_dir("bai-app-proxy-")
    with ThrowawayStack(["postgres"]) as stack, booted(stack, logs) as platform:
        summary = asyncio.run(measure(platform, load, args))
    print(json.dumps(summary))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
