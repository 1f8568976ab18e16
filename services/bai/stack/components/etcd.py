"""etcd: one member, client and peer URLs on 127.0.0.1."""

from __future__ import annotations

import functools
import subprocess

from bai.stack.config import StackConfig
from bai.stack.health import etcd_healthy, http_ok
from bai.stack.install import binary
from bai.stack.spec import ProcessSpec

NAME = "etcd"
PEER = "etcd-peer"


@functools.cache
def _supports(flag: str) -> bool:
    try:
        done = subprocess.run(
            [str(binary("etcd")), "--help"], capture_output=True, text=True, timeout=10
        )
    except (OSError, subprocess.TimeoutExpired):
        return False
    return flag in done.stdout + done.stderr


def spec(config: StackConfig) -> ProcessSpec:
    port = config.port(NAME)
    client_url = f"http://{config.host}:{port}"
    peer_url = f"http://{config.host}:{config.port(PEER)}"
    data = config.component_dir(NAME)
    argv = [
        str(binary("etcd")),
        "--name", "bai",
        "--data-dir", str(data / "data"),
        "--listen-client-urls", client_url,
        "--advertise-client-urls", client_url,
        "--listen-peer-urls", peer_url,
        "--initial-advertise-peer-urls", peer_url,
        "--initial-cluster", f"bai={peer_url}",
        "--initial-cluster-state", "new",
        "--logger", "zap",
        # One member: nobody to wait for, so elect itself quickly (default 1 s).
        "--heartbeat-interval", "20",
        "--election-timeout", "200",
    ]  # fmt: skip
    if config.ephemeral and _supports("--unsafe-no-fsync"):
        argv.append("--unsafe-no-fsync")
    return ProcessSpec(
        name=NAME,
        argv=argv,
        port=port,
        health=http_ok(f"{client_url}/health", etcd_healthy),
        cwd=data,
        prepare=lambda: data.mkdir(parents=True, exist_ok=True),
    )
