"""`bai manager migrate|bootstrap|start` as real processes: config from the environment
and etcd, JSON logs, service discovery for Prometheus, clean exit on SIGTERM."""

from __future__ import annotations

import asyncio
import json
import os
import signal
import subprocess
import sys
import urllib.request

import grpc

from bai.api.manager.v1 import auth_pb2, auth_pb2_grpc
from bai.common.global_config import put_global_config
from bai.stack.testing import free_ports
from tests.components.test_thin_services import _wait_serving


async def test_manager_process(stack) -> None:  # type: ignore[no-untyped-def]
    prefix = "/bai-test-manager-process"
    targets = {"agent": ["127.0.0.1:6003"], "envoy": ["127.0.0.1:9901/stats/prometheus"]}
    await put_global_config(
        stack.etcd_host, stack.etcd_port, prefix, "manager", "scrape_targets", targets
    )
    await asyncio.to_thread(_run, stack, prefix)


def _run(stack, prefix: str) -> None:  # type: ignore[no-untyped-def]
    grpc_port, metrics_port = free_ports(2)
    env = {
        **os.environ,
        "BAI_MANAGER__GRPC_PORT": str(grpc_port),
        "BAI_MANAGER__METRICS_PORT": str(metrics_port),
        "BAI_MANAGER__DB__URL": stack.pg_dsn,
        "BAI_MANAGER__REDIS__URL": stack.redis_url,
        "BAI_MANAGER__ETCD__HOST": stack.etcd_host,
        "BAI_MANAGER__ETCD__PORT": str(stack.etcd_port),
        "BAI_MANAGER__ETCD__PREFIX": prefix,
    }
    manager = [sys.executable, "-m", "bai.manager"]
    subprocess.run([*manager, "migrate"], env=env, check=True, capture_output=True, timeout=120)
    boot = subprocess.run(
        [*manager, "bootstrap", "--email", "proc@bai.local", "--username", "proc",
         "--password", "process-pass-1"],
        env=env, check=True, capture_output=True, text=True, timeout=120,
    )  # fmt: skip
    created = json.loads(boot.stdout[boot.stdout.index("{") :])
    assert created["password"] == "process-pass-1" and created["secret_key"]
    again = subprocess.run(
        [*manager, "bootstrap", "--email", "proc@bai.local", "--username", "proc"],
        env=env, check=True, capture_output=True, text=True, timeout=120,
    )  # fmt: skip
    assert json.loads(again.stdout[again.stdout.index("{") :])["secret_key"] is None  # shown once
    proc = subprocess.Popen(
        [*manager, "start"], env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT
    )
    try:
        address = f"127.0.0.1:{grpc_port}"
        _wait_serving(address)
        with grpc.insecure_channel(address) as channel:
            login = auth_pb2_grpc.AuthServiceStub(channel).Login(
                auth_pb2.LoginRequest(username="proc", password="process-pass-1"), timeout=10
            )
            assert login.identity.username == "proc"
        url = f"http://127.0.0.1:{metrics_port}/metrics/service_discovery"
        groups = json.loads(urllib.request.urlopen(url, timeout=5).read())
        by_component = {g["labels"]["component"]: g for g in groups}
        assert by_component["manager"]["targets"] == [f"127.0.0.1:{metrics_port}"]
        assert by_component["agent"]["targets"] == ["127.0.0.1:6003"]  # from etcd
        assert by_component["envoy"]["labels"]["__metrics_path__"] == "/stats/prometheus"
        metrics = urllib.request.urlopen(f"http://127.0.0.1:{metrics_port}/metrics", timeout=5)
        assert b'bai_rpc_requests_total{code="OK",component="manager"' in metrics.read()
    finally:
        proc.send_signal(signal.SIGTERM)
        out, _ = proc.communicate(timeout=30)
    assert proc.returncode == 0, out.decode()[-2000:]
    lines = [json.loads(line) for line in out.decode().splitlines() if line.startswith("{")]
    assert any(entry["msg"] == "serving" for entry in lines)
    assert any(entry["msg"] == "shutting down" for entry in lines)
