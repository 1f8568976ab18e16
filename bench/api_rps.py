#!/usr/bin/env python3
"""bench/api_rps: an authenticated unary manager RPC (AuthService.WhoAmI) at concurrency 32.

Measures requests/s and p50/p99 latency (median of interleaved rounds) of
  * a bare grpc.aio echo server answering WhoAmI (the baseline),
  * the manager directly and through the Envoy gateway, each with both ways
    to authenticate: a bearer token from Login (what the CLI after `bai
    login`, the browser UI and grpcurl send) and keypair signing (what the SDK
    sends: HMAC check plus a nonce burnt in Redis on every call),
all in the same run on the same machine, with the load generator in its own
process. Target: through Envoy, auth included, at least 0.5x the echo server;
the headline value is the bearer-token path, the signed path's figures are
in the same JSON. The last line is the JSON summary.

    python bench/api_rps.py [--seconds 5] [--rounds 3] [--concurrency 32]
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import grpc

from bai.api.manager.v1 import auth_pb2, auth_pb2_grpc
from bai.gateway.config import render_gateway_config, services_in_descriptor
from bai.gateway.process import gateway_process_argv
from bai.stack.testing import ThrowawayStack, free_ports

ROOT = Path(__file__).resolve().parent.parent
DESCRIPTOR = ROOT / "gen" / "descriptor" / "bai.binpb"
TARGET_RATIO = 0.5
BENCH_PASSWORD = "bench-password-1"


@contextmanager
def process(
    argv: list[str], env: dict[str, str] | None = None, log: Path | None = None
) -> Iterator[None]:
    out = open(log, "wb") if log else subprocess.DEVNULL
    proc = subprocess.Popen(
        argv, env={**os.environ, **(env or {})}, stdout=out, stderr=out, cwd=ROOT
    )
    try:
        yield
    finally:
        proc.terminate()
        try:
            proc.wait(10)
        except subprocess.TimeoutExpired:
            proc.kill()


def wait_ready(address: str, timeout: float = 30) -> None:
    with grpc.insecure_channel(address) as ch:
        grpc.channel_ready_future(ch).result(timeout=timeout)


def wait_http(port: int, timeout: float = 30) -> None:
    import urllib.request

    deadline = time.time() + timeout
    while time.time() < deadline:
        try:
            urllib.request.urlopen(f"http://127.0.0.1:{port}/ready", timeout=1)
            return
        except OSError:
            time.sleep(0.1)
    raise TimeoutError("envoy did not become ready")


def load(address: str, seconds: float, concurrency: int, keys: list[str]) -> dict[str, float]:
    out = subprocess.run(
        [
            sys.executable,
            str(ROOT / "bench" / "load.py"),
            address,
            str(seconds),
            str(concurrency),
            *keys,
        ],
        check=True,
        capture_output=True,
        text=True,
        cwd=ROOT,
    )
    return json.loads(out.stdout.strip().splitlines()[-1])  # type: ignore[no-any-return]


def login(address: str) -> str:
    with grpc.insecure_channel(address) as channel:
        reply = auth_pb2_grpc.AuthServiceStub(channel).Login(
            auth_pb2.LoginRequest(username="admin", password=BENCH_PASSWORD), timeout=30
        )
    return reply.token


def median_run(runs: list[dict[str, float]]) -> dict[str, float]:
    """The run with the median rate (its latencies come with it)."""
    return sorted(runs, key=lambda r: r["rps"])[len(runs) // 2]


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--seconds", type=float, default=5.0, help="per target and round")
    parser.add_argument("--rounds", type=int, default=3, help="interleaved rounds (median)")
    parser.add_argument("--concurrency", type=int, default=32)
    args = parser.parse_args()
    echo_port, mgr_port, mgr_metrics, envoy_port, envoy_admin = free_ports(5)
    logs = Path(tempfile.mkdtemp(prefix="bai-bench-"))
    py = sys.executable
    with ThrowawayStack(["postgres", "redis", "etcd"]) as stack:
        env = {
            "BAI_MANAGER__DB__URL": stack.pg_dsn,
            "BAI_MANAGER__REDIS__URL": stack.redis_url,
            "BAI_MANAGER__GRPC_PORT": str(mgr_port),
            "BAI_MANAGER__METRICS_PORT": str(mgr_metrics),
            "BAI_MANAGER__LOG_LEVEL": "warning",
            "BAI_MANAGER__ETCD__HOST": stack.etcd_host,
            "BAI_MANAGER__ETCD__PORT": str(stack.etcd_port),
        }
        boot = subprocess.run(
            [py, "-m", "bai.manager", "bootstrap", "--password", BENCH_PASSWORD],
            env={**os.environ, **env},
            check=True,
            capture_output=True,
            text=True,
            cwd=ROOT,
        )
        creds = json.loads(boot.stdout[boot.stdout.index("{") :])
        signed = [creds["access_key"], creds["secret_key"]]
        config = logs / "envoy.yaml"
        config.write_text(
            render_gateway_config(
                listen_port=envoy_port,
                admin_port=envoy_admin,
                manager_addr=("127.0.0.1", mgr_port),
                descriptor_path=DESCRIPTOR,
                services=services_in_descriptor(DESCRIPTOR),
                listen_address="127.0.0.1",
                access_log=False,
            )
        )
        direct, gateway = f"127.0.0.1:{mgr_port}", f"127.0.0.1:{envoy_port}"
        echo_argv = [py, str(ROOT / "bench" / "echo_server.py"), str(echo_port)]
        with (
            process(echo_argv, log=logs / "echo.log"),
            process([py, "-m", "bai.manager", "start"], env=env, log=logs / "manager.log"),
            process(gateway_process_argv(config, log_level="warn"), log=logs / "envoy.log"),
        ):
            wait_ready(f"127.0.0.1:{echo_port}")
            wait_ready(direct)
            wait_http(envoy_admin)
            token = [login(direct)]
            targets = {
                "echo": (f"127.0.0.1:{echo_port}", token),
                "direct": (direct, token),
                "envoy": (gateway, token),
                "direct-signed": (direct, signed),
                "envoy-signed": (gateway, signed),
            }
            runs: dict[str, list[dict[str, float]]] = {name: [] for name in targets}
            # Interleaved rounds, so that a noisy moment hits every target alike.
            for _ in range(args.rounds):
                for name, (address, creds_args) in targets.items():
                    runs[name].append(load(address, args.seconds, args.concurrency, creds_args))
        results = {name: median_run(r) for name, r in runs.items()}
    base = results["echo"]["rps"]
    for name, r in results.items():
        print(
            f"{name:>13}: {r['rps']:8.0f} req/s  p50 {r['p50_ms']:6.2f} ms"
            f"  p99 {r['p99_ms']:6.2f} ms"
            f"  ratio {r['rps'] / base:.2f}  errors {r['errors']}"
        )
    ratio = results["envoy"]["rps"] / base
    print(
        json.dumps(
            {
                "bench": "api_rps",
                "value": round(results["envoy"]["rps"], 1),
                "unit": "req/s",
                "baseline": round(base, 1),
                "ratio": round(ratio, 3),
                "target": TARGET_RATIO,
                "ok": ratio >= TARGET_RATIO,
                "direct_rps": round(results["direct"]["rps"], 1),
                "direct_ratio": round(results["direct"]["rps"] / base, 3),
                "signed_envoy_ratio": round(results["envoy-signed"]["rps"] / base, 3),
                "signed_direct_ratio": round(results["direct-signed"]["rps"] / base, 3),
                "p50_ms": {k: round(v["p50_ms"], 2) for k, v in results.items()},
                "p99_ms": {k: round(v["p99_ms"], 2) for k, v in results.items()},
            }
        )
    )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
