"""Real processes for tests and the bench: `bai storage start` and an Envoy gateway before it."""

from __future__ import annotations

import http.client
import os
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import grpc
from grpc_health.v1 import health_pb2, health_pb2_grpc

from bai.stack.testing import free_ports

BAI = Path(sys.executable).parent / "bai"


class ProxyProcess:
    def __init__(
        self,
        volume: Path,
        log: Path,
        *,
        client_port: int,
        manager_port: int,
        jwt_secret: str,
        manager_token: str,
        metrics_port: int = 0,
        http_port: int = 0,
    ) -> None:
        self.client_port = client_port
        self.http_port = http_port
        self.manager_port = manager_port
        self.log = log
        self.env = {
            **os.environ,
            "BAI_STORAGE__ETCD__ENABLED": "false",
            "BAI_STORAGE__BIND": "127.0.0.1",
            "BAI_STORAGE__GRPC_PORT": str(client_port),
            "BAI_STORAGE__MANAGER_PORT": str(manager_port),
            "BAI_STORAGE__HTTP_PORT": str(http_port),
            "BAI_STORAGE__METRICS_PORT": str(metrics_port),
            "BAI_STORAGE__VOLUMES__LOCAL__PATH": str(volume),
            "BAI_STORAGE__JWT_SECRET": jwt_secret,
            "BAI_STORAGE__MANAGER_TOKEN": manager_token,
            "BAI_STORAGE__LOG_LEVEL": "warning",
        }
        self.proc: subprocess.Popen[bytes] | None = None

    @property
    def pid(self) -> int:
        assert self.proc is not None
        return self.proc.pid

    def start(self, timeout: float = 30) -> None:
        with self.log.open("ab") as out:
            self.proc = subprocess.Popen(
                [str(BAI), "storage", "start"], env=self.env, stdout=out, stderr=subprocess.STDOUT
            )
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError(f"storage proxy exited:\n{self.log.read_text()[-3000:]}")
            if self._serving():
                return
            time.sleep(0.1)
        raise TimeoutError(f"storage proxy not serving:\n{self.log.read_text()[-3000:]}")

    def _serving(self) -> bool:
        try:
            with grpc.insecure_channel(f"127.0.0.1:{self.client_port}") as channel:
                reply = health_pb2_grpc.HealthStub(channel).Check(
                    health_pb2.HealthCheckRequest(), timeout=1
                )
            return bool(reply.status == health_pb2.HealthCheckResponse.SERVING)
        except grpc.RpcError:
            return False

    def kill(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.send_signal(signal.SIGKILL)
            self.proc.wait(10)

    def stop(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(15)
            except subprocess.TimeoutExpired:
                self.kill()


@contextmanager
def running_proxy(workdir: Path, *, jwt_secret: str, manager_token: str) -> Iterator[ProxyProcess]:
    """A started proxy on free ports over a fresh volume in `workdir`; stopped after."""
    client_port, manager_port = free_ports(2)
    volume = workdir / "volume"
    volume.mkdir()
    process = ProxyProcess(
        volume,
        workdir / "proxy.log",
        client_port=client_port,
        manager_port=manager_port,
        jwt_secret=jwt_secret,
        manager_token=manager_token,
    )
    process.start()
    try:
        yield process
    finally:
        process.stop()


class GatewayProcess:
    """The real gateway Envoy (rendered config) routing FileService to a storage proxy."""

    def __init__(
        self,
        workdir: Path,
        *,
        listen_port: int,
        admin_port: int,
        storage_port: int,
        storage_http_port: int = 0,
    ) -> None:
        from bai.gateway.config import (
            DEFAULT_DESCRIPTOR,
            render_gateway_config,
            services_in_descriptor,
        )
        from bai.stack.config import repo_root
        from bai.stack.testing import free_ports

        descriptor = repo_root() / DEFAULT_DESCRIPTOR
        (unused_manager,) = free_ports(1)
        self.port = listen_port
        self.admin_port = admin_port
        self.config = workdir / "gateway.yaml"
        self.log = workdir / "envoy.log"
        self.config.write_text(
            render_gateway_config(
                listen_port=listen_port,
                admin_port=admin_port,
                manager_addr=("127.0.0.1", unused_manager),
                storage_addr=("127.0.0.1", storage_port),
                storage_http_addr=("127.0.0.1", storage_http_port or unused_manager),
                descriptor_path=descriptor,
                services=services_in_descriptor(descriptor),
                listen_address="127.0.0.1",
                access_log=False,
            )
        )
        self.proc: subprocess.Popen[bytes] | None = None

    def start(self, timeout: float = 30) -> None:
        from bai.gateway.process import gateway_process_argv

        with self.log.open("wb") as out:
            self.proc = subprocess.Popen(
                gateway_process_argv(self.config, log_level="warning"),
                stdout=out,
                stderr=subprocess.STDOUT,
            )
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError(f"envoy exited:\n{self.log.read_text()[-3000:]}")
            if self._ready():
                return
            time.sleep(0.1)
        raise TimeoutError(f"envoy not ready:\n{self.log.read_text()[-3000:]}")

    def _ready(self) -> bool:
        try:
            conn = http.client.HTTPConnection("127.0.0.1", self.admin_port, timeout=1)
            conn.request("GET", "/ready")
            resp = conn.getresponse()
            return resp.status == 200 and resp.read().strip() == b"LIVE"
        except OSError:
            return False

    def stop(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(10)
