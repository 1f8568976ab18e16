"""`bai coordinator start` as a real process: health, a real CircuitService, clean SIGTERM,
and the xDS files of its configured worker written before it serves."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
import uuid
from pathlib import Path

import grpc
from grpc_health.v1 import health_pb2, health_pb2_grpc

from bai.api.coordinator.v1 import coordinator_pb2 as pb
from bai.api.coordinator.v1 import coordinator_pb2_grpc
from bai.stack.testing import free_ports


def _serving(address: str, proc: subprocess.Popen[bytes]) -> None:
    deadline = time.monotonic() + 30
    with grpc.insecure_channel(address) as ch:
        stub = health_pb2_grpc.HealthStub(ch)
        while time.monotonic() < deadline:
            assert proc.poll() is None, proc.communicate()[0].decode()[-3000:]
            try:
                if stub.Check(health_pb2.HealthCheckRequest(), timeout=1).status == 1:
                    return
            except grpc.RpcError:
                time.sleep(0.1)
    raise TimeoutError(f"{address} never became SERVING")


def test_process_serves_and_stops_cleanly(stack, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    grpc_port, metrics_port, authz_port, worker_port = free_ports(4)
    authority = f"127.0.0.1:{worker_port}"
    env = {
        **os.environ,
        "BAI_COORDINATOR__ETCD__ENABLED": "false",
        "BAI_COORDINATOR__DB__URL": stack.pg_dsn,
        "BAI_COORDINATOR__DB__SCHEMA_NAME": f"coord_proc_{uuid.uuid4().hex[:8]}",
        "BAI_COORDINATOR__GRPC_PORT": str(grpc_port),
        "BAI_COORDINATOR__METRICS_PORT": str(metrics_port),
        "BAI_COORDINATOR__AUTHZ__PORT": str(authz_port),
        "BAI_COORDINATOR__XDS__DIRECTORY": str(tmp_path / "xds"),
        "BAI_COORDINATOR__LOCAL_WORKERS": json.dumps(
            [{"authority": authority, "port_start": worker_port, "port_end": worker_port}]
        ),
    }
    proc = subprocess.Popen(
        [sys.executable, "-m", "bai.coordinator", "start"],
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
    )
    try:
        address = f"127.0.0.1:{grpc_port}"
        _serving(address, proc)
        assert (tmp_path / "xds" / f"127.0.0.1_{worker_port}" / "lds.json").is_file()
        with grpc.insecure_channel(address) as ch:
            workers = coordinator_pb2_grpc.WorkerServiceStub(ch).ListWorkers(
                pb.ListWorkersRequest(), timeout=5
            )
            listed = coordinator_pb2_grpc.CircuitServiceStub(ch).ListCircuits(
                pb.ListCircuitsRequest(), timeout=5
            )
        assert [w.authority for w in workers.workers] == [authority]
        assert workers.workers[0].status == pb.WORKER_STATUS_ALIVE
        assert list(listed.circuits) == []
    finally:
        proc.send_signal(signal.SIGTERM)
        out, _ = proc.communicate(timeout=20)
    assert proc.returncode == 0, out.decode()[-3000:]
