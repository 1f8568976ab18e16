"""docker-compose.yml stays a valid Compose file that runs the whole system."""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]


def _compose() -> list[str] | None:
    if shutil.which("docker-compose"):
        return ["docker-compose"]
    if shutil.which("docker"):
        probe = subprocess.run(["docker", "compose", "version"], capture_output=True)
        if probe.returncode == 0:
            return ["docker", "compose"]
    return None


@pytest.mark.skipif(
    _compose() is None, reason="neither docker-compose nor docker compose is installed"
)
def test_compose_config_is_valid_and_complete() -> None:
    cmd = _compose()
    assert cmd is not None
    out = subprocess.run(
        [*cmd, "-f", str(ROOT / "docker-compose.yml"), "config", "--services"],
        capture_output=True,
        text=True,
        cwd=ROOT,
    )
    assert out.returncode == 0, out.stderr
    services = set(out.stdout.split())
    expected = {
        "postgres",
        "redis",
        "etcd",
        "envoy",
        "prometheus",
        "manager",
        "storage",
        "agent",
        "coordinator",
        "app-proxy",
    }
    assert expected <= services
