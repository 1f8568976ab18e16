"""The agent and the storage proxy start as real processes: config from etcd,
health, reflection, /metrics, clean SIGTERM, and precise answers (the storage
proxy refuses a call without a transfer token). The coordinator needs its
database: tests/coordinator/test_process.py starts it."""

from __future__ import annotations

import asyncio
import os
import signal
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import grpc
import pytest
from google.protobuf import empty_pb2
from grpc_health.v1 import health_pb2, health_pb2_grpc
from grpc_reflection.v1alpha import reflection_pb2, reflection_pb2_grpc

from bai.common.global_config import put_global_config
from bai.stack.testing import ThrowawayStack, free_ports

CASES = [
    ("agent", "bai.api.agent.v1.AgentService", "GetHealth"),
    ("storage", "bai.api.storage.v1.FileService", "ListDirectory"),
]


def _wait_serving(address: str, timeout: float = 20) -> None:
    deadline = time.time() + timeout
    with grpc.insecure_channel(address) as ch:
        stub = health_pb2_grpc.HealthStub(ch)
        while time.time() < deadline:
            try:
                if stub.Check(health_pb2.HealthCheckRequest(), timeout=1).status == 1:
                    return
            except grpc.RpcError:
                time.sleep(0.1)
    raise TimeoutError(f"{address} never became SERVING")


@pytest.mark.parametrize(("component", "service", "method"), CASES)
async def test_component_process(
    stack: ThrowawayStack, tmp_path: Path, component: str, service: str, method: str
) -> None:
    prefix = f"/bai-test-{component}"
    # The log level comes from etcd's shared config: proof the layer is read.
    await put_global_config(
        stack.etcd_host, stack.etcd_port, prefix, component, "log_level", "debug"
    )
    await asyncio.to_thread(_run_component, stack, component, service, method, prefix, tmp_path)


def _run_component(
    stack: ThrowawayStack, component: str, service: str, method: str, prefix: str, tmp: Path
) -> None:
    grpc_port, metrics_port, extra = free_ports(3)
    upper = component.upper()
    env = {
        **os.environ,
        f"BAI_{upper}__GRPC_PORT": str(grpc_port),
        f"BAI_{upper}__METRICS_PORT": str(metrics_port),
        f"BAI_{upper}__MANAGER_PORT": str(extra),
        "BAI_STORAGE__HTTP_PORT": "0",
        f"BAI_{upper}__ETCD__HOST": stack.etcd_host,
        f"BAI_{upper}__ETCD__PORT": str(stack.etcd_port),
        f"BAI_{upper}__ETCD__PREFIX": prefix,
        # The agent's kernel records and scratch; no manager listens there.
        "BAI_AGENT__STATE_DIR": str(tmp / "agent-state"),
        "BAI_AGENT__MANAGER_ADDR": f"127.0.0.1:{extra}",
    }
    proc = subprocess.Popen(
        [sys.executable, "-m", f"bai.{component}", "start"],
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
    )
    try:
        address = f"127.0.0.1:{grpc_port}"
        _wait_serving(address)
        with grpc.insecure_channel(address) as ch:
            refl = reflection_pb2_grpc.ServerReflectionStub(ch)
            reply = next(
                iter(
                    refl.ServerReflectionInfo(
                        iter([reflection_pb2.ServerReflectionRequest(list_services="")]), timeout=5
                    )
                )
            )
            names = {s.name for s in reply.list_services_response.service}
            assert service in names
            call = ch.unary_unary(
                f"/{service}/{method}", request_serializer=lambda m: m.SerializeToString()
            )
            if component == "agent":
                _check_agent(ch)
            else:
                with pytest.raises(grpc.RpcError) as info:
                    call(empty_pb2.Empty(), timeout=5)
                assert info.value.code() == grpc.StatusCode.UNAUTHENTICATED
                details = dict(info.value.trailing_metadata() or ())
                assert b"TRANSFER_TOKEN_INVALID" in details["grpc-status-details-bin"]
        body = urllib.request.urlopen(f"http://127.0.0.1:{metrics_port}/metrics", timeout=5).read()
        assert b"python_info" in body
    finally:
        proc.send_signal(signal.SIGTERM)
        out, _ = proc.communicate(timeout=20)
    assert proc.returncode == 0, out.decode()
    assert b'"log_level": "debug"' in out  # the etcd layer was applied
    assert b'"component": "' + component.encode() + b'"' in out


def _check_agent(channel: grpc.Channel) -> None:
    from bai.api.agent.v1 import agent_pb2, agent_pb2_grpc

    stub = agent_pb2_grpc.AgentServiceStub(channel)
    health = stub.GetHealth(agent_pb2.GetHealthRequest(), timeout=10)
    assert health.agent_id == "agent-1"
    assert health.boot_id
    assert {c.name for c in health.checks} >= {"container-runtime", "manager-stream"}
    kernels = stub.ListKernels(agent_pb2.ListKernelsRequest(), timeout=10)
    assert list(kernels.kernels) == []
