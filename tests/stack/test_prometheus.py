"""Prometheus' config file, and (when installed) a real start."""

from __future__ import annotations

import json
import shutil
import subprocess
from pathlib import Path

import pytest

from bai.stack import StackConfig
from bai.stack.components import prometheus
from bai.stack.config import DEFAULT_SERVICE_DISCOVERY_URL
from bai.stack.health import http_get
from bai.stack.testing import ThrowawayStack


def test_config_contents(tmp_path: Path) -> None:
    config = StackConfig(state_dir=tmp_path, ports={"prometheus": 19999})
    path = prometheus.write_config(config)
    text = path.read_text()
    assert path == tmp_path / "prometheus" / "prometheus.yml"
    assert '- targets: ["127.0.0.1:19999"]' in text
    assert "http_sd_configs:" in text
    assert f"- url: {json.dumps(DEFAULT_SERVICE_DISCOVERY_URL)}" in text
    assert DEFAULT_SERVICE_DISCOVERY_URL == "http://127.0.0.1:18080/metrics/service_discovery"
    assert (tmp_path / "prometheus" / "data").is_dir()


def test_spec_uses_state_dir(tmp_path: Path) -> None:
    config = StackConfig(state_dir=tmp_path, ports={"prometheus": 19999})
    spec = prometheus.spec(config)
    assert f"--config.file={tmp_path / 'prometheus' / 'prometheus.yml'}" in spec.argv
    assert f"--storage.tsdb.path={tmp_path / 'prometheus' / 'data'}" in spec.argv
    assert "--web.listen-address=127.0.0.1:19999" in spec.argv


@pytest.mark.skipif(shutil.which("promtool") is None, reason="promtool not installed")
def test_promtool_accepts_config(tmp_path: Path) -> None:
    path = prometheus.write_config(StackConfig(state_dir=tmp_path))
    done = subprocess.run(
        ["promtool", "check", "config", str(path)], capture_output=True, text=True
    )
    assert done.returncode == 0, done.stdout + done.stderr


@pytest.mark.skipif(shutil.which("prometheus") is None, reason="prometheus not installed")
def test_prometheus_starts() -> None:
    with ThrowawayStack(["prometheus"], install=False) as s:
        got = http_get(f"{s.config.prometheus_url}/api/v1/status/config")
        assert got is not None and got[0] == 200
        assert b"service_discovery" in got[1]
