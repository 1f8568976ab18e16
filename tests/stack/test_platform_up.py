"""`bai stack up` brings the whole system up (what README's first command runs):
infrastructure, then manager, storage, agent, coordinator, the gateway Envoy and the
app-proxy Envoy, all healthy,
the API answering through Envoy; `down` stops everything."""

from __future__ import annotations

import http.client
import json
import os
import subprocess
import sys
from pathlib import Path

from bai.stack.config import DEFAULT_PORTS
from bai.stack.testing import free_ports, scratch_dir


def _stack(state: Path, ports: dict[str, int], command: str) -> subprocess.CompletedProcess[str]:
    flags = [f"--port={name}={port}" for name, port in ports.items()]
    return subprocess.run(
        [sys.executable, "-m", "bai.stack", "--state-dir", str(state), *flags, command],
        capture_output=True, text=True, timeout=300, env=os.environ,
    )  # fmt: skip


def test_whole_system_up_status_down(tmp_path: Path) -> None:
    base = scratch_dir() or tmp_path
    state = base / f"bai-platform-{os.getpid()}"
    ports = dict(zip(DEFAULT_PORTS, free_ports(len(DEFAULT_PORTS)), strict=True))
    try:
        up = _stack(state, ports, "up")
        assert up.returncode == 0, up.stdout + up.stderr
        status = _stack(state, ports, "status")
        assert status.returncode == 0, status.stdout
        for name in ("postgres", "redis", "etcd", "prometheus", "manager", "storage", "agent",
                     "coordinator", "envoy", "app-proxy"):  # fmt: skip
            assert name in status.stdout
        again = _stack(state, ports, "up")
        assert again.returncode == 0 and "started " not in again.stdout  # idempotent
        conn = http.client.HTTPConnection("127.0.0.1", ports["envoy"], timeout=10)
        conn.request("GET", "/v1/auth/whoami")
        resp = conn.getresponse()
        body = json.loads(resp.read())
        assert resp.status == 401 and body["details"][0]["reason"] == "CREDENTIALS_MISSING"
    finally:
        down = _stack(state, ports, "reset")
        assert down.returncode == 0, down.stdout + down.stderr
    assert not state.exists()
