"""up / down / status / reset, the CLI, and extra components from the registry."""

from __future__ import annotations

import os
import socket
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from bai.stack import (
    ProcessSpec,
    Stack,
    StackConfig,
    StackError,
    free_ports,
    http_ok,
    register_component,
    unregister_component,
)
from bai.stack.cli import main
from bai.stack.process import pid_alive
from bai.stack.testing import ThrowawayStack


def _gone(pid: int, timeout: float = 5.0) -> bool:
    deadline = time.monotonic() + timeout
    while pid_alive(pid):
        if time.monotonic() > deadline:
            return False
        time.sleep(0.02)
    return True


@pytest.fixture
def state_dir(tmp_path: Path) -> Path:
    return tmp_path / "state"


def _redis_config(state_dir: Path) -> StackConfig:
    (port,) = free_ports(1)
    return StackConfig(state_dir=state_dir, ports={"redis": port}, ephemeral=True)


def test_up_twice_is_harmless_and_fast(stack: ThrowawayStack) -> None:
    before = {s.name: s.pid for s in stack.stack.status()}
    t0 = time.monotonic()
    again = stack.stack.up()
    assert time.monotonic() - t0 < 2.0
    assert {r.name for r in again} == {"postgres", "redis", "etcd"}
    assert not any(r.started for r in again)
    assert {r.name: r.pid for r in again} == before


def test_status_reports_running(stack: ThrowawayStack) -> None:
    rows = {r.name: r for r in stack.stack.status()}
    assert set(rows) == {"postgres", "redis", "etcd"}
    for name, row in rows.items():
        assert row.running and row.healthy, row
        assert row.port == stack.config.port(name)
        assert row.pid is not None and pid_alive(row.pid)
        assert stack.config.pid_file(name).read_text().strip() == str(row.pid)
        assert stack.config.log_file(name).exists()


def test_down_stops_processes(state_dir: Path) -> None:
    config = _redis_config(state_dir)
    s = Stack(config, ["redis"])
    (result,) = s.up()
    assert result.started and pid_alive(result.pid)
    assert s.down() == ["redis"]
    assert _gone(result.pid)
    assert not config.pid_file("redis").exists()
    (row,) = s.status()
    assert (row.pid, row.healthy, row.port) == (None, False, config.port("redis"))
    assert s.down() == []  # nothing left to stop


def test_stale_pid_file_is_replaced(state_dir: Path) -> None:
    config = _redis_config(state_dir)
    config.run_dir.mkdir(parents=True)
    config.pid_file("redis").write_text("999999\n")
    s = Stack(config, ["redis"])
    assert s.status()[0].pid is None
    try:
        (result,) = s.up()
        assert result.started and result.pid != 999999
    finally:
        s.down()


def test_port_in_use_is_reported(state_dir: Path) -> None:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        sock.listen()
        port = sock.getsockname()[1]
        config = StackConfig(state_dir=state_dir, ports={"redis": port}, ephemeral=True)
        with pytest.raises(StackError, match="in use"):
            Stack(config, ["redis"]).up()


def test_reset_deletes_state_dir_and_refuses_foreign_dirs(tmp_path: Path) -> None:
    config = _redis_config(tmp_path / "state")
    s = Stack(config, ["redis"])
    (result,) = s.up()
    s.reset()  # with `only`: that component's data and log go, the state dir stays
    assert _gone(result.pid)
    assert not config.component_dir("redis").exists()
    assert not config.log_file("redis").exists()
    assert config.state_dir.exists()
    Stack(config).reset()  # without: the whole state dir goes
    assert not config.state_dir.exists()

    foreign = tmp_path / "precious"
    foreign.mkdir()
    (foreign / "data.txt").write_text("keep me")
    with pytest.raises(StackError, match="does not look like"):
        Stack(StackConfig(state_dir=foreign), ["redis"]).reset()
    assert (foreign / "data.txt").exists()


def test_unknown_component(state_dir: Path) -> None:
    with pytest.raises(StackError, match="unknown component"):
        Stack(StackConfig(state_dir=state_dir), ["nope"]).specs()


def test_cli(state_dir: Path, capsys: pytest.CaptureFixture[str]) -> None:
    (port,) = free_ports(1)
    base = ["--state-dir", str(state_dir), "--only", "redis"]
    assert main([*base, "--port", f"redis={port}", "up"]) == 0
    try:
        assert "started" in capsys.readouterr().out
        # The port is remembered: later commands need no --port.
        assert main([*base, "up"]) == 0
        assert "already running" in capsys.readouterr().out
        assert main([*base, "status"]) == 0
        out = capsys.readouterr().out
        assert "redis" in out and str(port) in out and "yes" in out
    finally:
        assert main([*base, "down"]) == 0
    assert "stopped: redis" in capsys.readouterr().out
    assert main([*base, "status"]) == 3
    assert main(["--state-dir", str(state_dir), "reset"]) == 0
    assert not state_dir.exists()
    assert main(["--state-dir", str(state_dir), "--only", "nope", "status"]) == 1


@pytest.fixture
def http_component() -> Iterator[str]:
    """A stand-in for Envoy: an extra component plugged in through the registry."""
    name = "test-http"
    (port,) = free_ports(1)

    def factory(config: StackConfig) -> ProcessSpec:
        root = config.component_dir(name)
        return ProcessSpec(
            name=name,
            argv=[sys.executable, "-m", "http.server", "--bind", config.host, str(port)],
            port=port,
            env={"PYTHONUNBUFFERED": "1"},
            cwd=root,
            health=http_ok(f"http://{config.host}:{port}/"),
            prepare=lambda: root.mkdir(parents=True, exist_ok=True),
        )

    register_component(name, factory, default=False)
    try:
        yield name
    finally:
        unregister_component(name)


def test_registered_extra_component(state_dir: Path, http_component: str) -> None:
    config = StackConfig(state_dir=state_dir, ephemeral=True)
    assert http_component not in [s.name for s in Stack(config).specs()]  # default=False
    s = Stack(config, [http_component])
    (result,) = s.up()
    assert result.started
    assert s.status()[0].healthy
    # A plain `down` stops everything with a pid file, registered or not.
    assert Stack(config).down() == [http_component]
    assert _gone(result.pid)


def test_postgres_runs_unprivileged(stack: ThrowawayStack) -> None:
    (row,) = [r for r in stack.stack.status() if r.name == "postgres"]
    assert row.pid is not None
    uid = os.stat(f"/proc/{row.pid}").st_uid
    if os.geteuid() == 0:
        assert uid != 0
    data = stack.config.component_dir("postgres") / "data"
    assert (data / "PG_VERSION").exists()
