"""Each bench runs end to end at tiny sizes and ends with its JSON summary line.

No timing is asserted (the numbers at these sizes mean nothing); what is checked
is that the bench boots what it needs, measures every path and reports every key.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

ROOT = Path(__file__).resolve().parents[2]
KERNEL_IMAGE = "bai.local/stable/python:3.11"
COMMON_KEYS = {"bench", "value", "unit", "baseline", "ratio", "target", "ok"}

pytestmark = pytest.mark.slow


def run_bench(script: str, *args: str) -> dict[str, Any]:
    done = subprocess.run(
        [sys.executable, str(ROOT / "bench" / script), *args],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=600,
        check=False,
    )
    assert done.returncode == 0, f"{script} failed:\n{done.stdout[-3000:]}\n{done.stderr[-3000:]}"
    summary: dict[str, Any] = json.loads(done.stdout.strip().splitlines()[-1])
    assert COMMON_KEYS <= summary.keys(), summary
    assert isinstance(summary["value"], int | float) and summary["value"] > 0, summary
    assert isinstance(summary["baseline"], int | float) and summary["baseline"] > 0, summary
    assert isinstance(summary["ok"], bool)
    return summary


def kernel_image_present() -> bool:
    if not os.path.exists("/var/run/docker.sock"):
        return False
    done = subprocess.run(
        ["docker", "image", "inspect", KERNEL_IMAGE], capture_output=True, check=False
    )
    return done.returncode == 0


def process_runtime_usable() -> bool:
    return os.geteuid() == 0 and shutil.which("bwrap") is not None


def test_scheduler_pure() -> None:
    summary = run_bench("scheduler.py", "--agents", "20", "--sessions", "200", "--rounds", "1")
    assert summary["bench"] == "scheduler_pure"
    assert summary["unit"] == "decisions/s"


def test_api_rps() -> None:
    summary = run_bench("api_rps.py", "--seconds", "0.3", "--rounds", "1", "--concurrency", "4")
    assert summary["bench"] == "api_rps"
    assert {"direct", "envoy", "echo"} <= summary["p50_ms"].keys()


def test_scheduler_e2e() -> None:
    summary = run_bench("scheduler_e2e.py", "--agents", "2", "--sessions", "10", "--limit", "120")
    assert summary["bench"] == "scheduler_e2e"
    assert summary["target"] == 500
    # Every enqueued session reached RUNNING through the fake agents' events.
    assert summary["running"] == summary["sessions"] == 10
    assert summary["manager_cpu_ms_per_session"] > 0
    # Where the machine's CPU went: the parts, the rest, and the whole.
    cpu = summary["cpu_ms_per_session"]
    assert {"manager", "postgres", "harness", "other", "machine"} <= cpu.keys()
    assert cpu["manager"] > 0 and cpu["postgres"] > 0


@pytest.mark.skipif(not os.path.exists("/var/run/docker.sock"), reason="dockerd is not running")
@pytest.mark.skipif(
    os.path.exists("/var/run/docker.sock") and not kernel_image_present(),
    reason=f"{KERNEL_IMAGE} is not built (bai agent build-image)",
)
def test_session_start() -> None:
    process_sessions = "1" if process_runtime_usable() else "0"
    summary = run_bench(
        "session_start.py",
        "--sessions",
        "1",
        "--process-sessions",
        process_sessions,
        "--execs",
        "2",
    )
    assert summary["bench"] == "session_start"
    assert summary["unit"] == "ms"
    for key in ("p95_ms", "baseline_p95_ms", "exec_p50_ms", "exec_agent_p50_ms"):
        assert summary[key] > 0, key
    assert summary["exec_runner_p50_ms"] > 0
    assert summary["exec_target_ms"] == 20
    assert isinstance(summary["exec_ok"], bool)
    if process_sessions == "1":
        assert summary["process_p50_ms"] > 0
    else:
        assert summary["process_p50_ms"] is None
    assert "CREATING->RUNNING" in summary["phases_p50_ms"]


def test_storage() -> None:
    summary = run_bench("storage.py", "--size", "8MiB", "--rounds", "1")
    assert summary["bench"] == "storage_transfer" and summary["proxy_peak_rss_mb"] > 0
    assert summary["baseline"] > 0 and isinstance(summary["ok"], bool)
    for path in ("http_upload", "http_download", "grpc_upload", "grpc_download"):
        assert summary[f"{path}_mbps"] > 0
    # The reference: the same client through a bare Envoy to a byte origin.
    assert summary["envoy_alone_upload_mbps"] > 0 and summary["envoy_alone_download_mbps"] > 0
    assert summary["envoy_alone_ratio"] > 0


def test_app_proxy() -> None:
    summary = run_bench("app_proxy.py", "--quick")
    assert summary["bench"] == "app_proxy" and summary["unit"] == "requests/s"
    assert summary["registration_p50_ms"] > 0 and summary["baseline"] > 0
    assert summary["bare_envoy_rps"] > 0
    assert set(summary["machine_busy_cores"]) == {
        "direct",
        "envoy (cookie)",
        "envoy (public)",
        "bare envoy",
    }
