"""Daemon processes tracked by pid files under the state dir (no supervisor)."""

from __future__ import annotations

import contextlib
import json
import os
import pwd
import signal
import subprocess
import threading
import time
from dataclasses import dataclass
from pathlib import Path

from bai.stack.config import StackConfig
from bai.stack.errors import StackError
from bai.stack.spec import ProcessSpec

# Popen objects of the daemons this process started, so they can be reaped.
_children: dict[int, subprocess.Popen[bytes]] = {}
_children_lock = threading.Lock()


@dataclass(frozen=True)
class RunInfo:
    """What ``up`` recorded about a running component."""

    name: str
    pid: int
    port: int | None
    argv0: str
    stop_signal: int


def read_run_info(config: StackConfig, name: str) -> RunInfo | None:
    try:
        pid = int(config.pid_file(name).read_text().strip())
    except (OSError, ValueError):
        return None
    meta: dict[str, object] = {}
    with contextlib.suppress(OSError, ValueError):
        loaded = json.loads(config.meta_file(name).read_text())
        if isinstance(loaded, dict):
            meta = loaded
    port = meta.get("port")
    sig = meta.get("stop_signal")
    return RunInfo(
        name=name,
        pid=pid,
        port=port if isinstance(port, int) else None,
        argv0=str(meta.get("argv0", "")),
        stop_signal=sig if isinstance(sig, int) else int(signal.SIGTERM),
    )


def recorded_names(config: StackConfig) -> list[str]:
    """Components with a pid file, whatever is registered now."""
    if not config.run_dir.is_dir():
        return []
    return sorted(p.stem for p in config.run_dir.glob("*.pid"))


def _write_run_info(config: StackConfig, spec: ProcessSpec, pid: int) -> None:
    config.run_dir.mkdir(parents=True, exist_ok=True)
    meta = {
        "pid": pid,
        "port": spec.port,
        "argv0": os.path.basename(spec.argv[0]),
        "stop_signal": int(spec.stop_signal),
    }
    config.meta_file(spec.name).write_text(json.dumps(meta) + "\n")
    config.pid_file(spec.name).write_text(f"{pid}\n")


def remove_run_info(config: StackConfig, name: str) -> None:
    config.pid_file(name).unlink(missing_ok=True)
    config.meta_file(name).unlink(missing_ok=True)


def _reap(pid: int) -> None:
    with _children_lock:
        child = _children.get(pid)
    if child is not None:
        if child.poll() is not None:
            with _children_lock:
                _children.pop(pid, None)
        return
    with contextlib.suppress(ChildProcessError, OSError):
        os.waitpid(pid, os.WNOHANG)


def pid_alive(pid: int, argv0: str = "") -> bool:
    """True when ``pid`` runs and (if ``argv0`` is given) is that program, not a reused pid."""
    _reap(pid)
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        pass
    proc = Path(f"/proc/{pid}")
    try:
        stat = (proc / "stat").read_text()
        if stat.rsplit(")", 1)[1].split()[0] in ("Z", "X"):
            return False
        cmdline = (proc / "cmdline").read_bytes()
    except (OSError, IndexError):
        return True  # no /proc: trust kill(0)
    if not argv0:
        return True
    first = cmdline.replace(b"\0", b" ").split(b" ", 1)[0].decode(errors="replace")
    return os.path.basename(first) == argv0 or argv0 in first


def running_pid(config: StackConfig, name: str) -> int | None:
    info = read_run_info(config, name)
    if info is None or not pid_alive(info.pid, info.argv0):
        return None
    return info.pid


def _user_ids(user: str) -> tuple[int, int]:
    try:
        entry = pwd.getpwnam(user)
    except KeyError as exc:
        raise StackError(f"system user {user!r} does not exist") from exc
    return entry.pw_uid, entry.pw_gid


def run_as(spec_user: str | None) -> str | None:
    """The user a process should run as: ``spec_user`` only when we are root."""
    return spec_user if spec_user and os.geteuid() == 0 else None


def start(config: StackConfig, spec: ProcessSpec) -> int:
    """Start ``spec`` as a daemon (own session, output to its log file); returns the pid."""
    exe = spec.argv[0]
    if not os.path.isabs(exe) or not os.access(exe, os.X_OK):
        raise StackError(f"{spec.name}: {exe} not found or not executable (is it installed?)")
    config.log_dir.mkdir(parents=True, exist_ok=True)
    user = run_as(spec.user)
    uid: int | None = None
    gid: int | None = None
    groups: list[int] | None = None
    if user is not None:
        uid, gid = _user_ids(user)
        groups = []
    env = dict(os.environ)
    env.update(spec.env)
    with open(config.log_file(spec.name), "ab") as log:
        log.write(f"--- {time.strftime('%Y-%m-%d %H:%M:%S')} starting {spec.name}\n".encode())
        log.flush()
        child = subprocess.Popen(
            list(spec.argv),
            stdin=subprocess.DEVNULL,
            stdout=log,
            stderr=subprocess.STDOUT,
            cwd=str(spec.cwd) if spec.cwd else None,
            env=env,
            start_new_session=True,
            close_fds=True,
            user=uid,
            group=gid,
            extra_groups=groups,
        )
    with _children_lock:
        _children[child.pid] = child
    _write_run_info(config, spec, child.pid)
    return child.pid


def log_tail(config: StackConfig, name: str, lines: int = 20) -> str:
    try:
        text = config.log_file(name).read_text(errors="replace")
    except OSError:
        return ""
    return "\n".join(text.splitlines()[-lines:])


def wait_healthy(config: StackConfig, spec: ProcessSpec, pid: int) -> None:
    """Poll ``spec.health`` until True; raise (with the log's tail) on exit or timeout."""
    deadline = time.monotonic() + spec.start_timeout
    delay = 0.02
    while True:
        if spec.health():
            return
        if not pid_alive(pid):
            remove_run_info(config, spec.name)
            raise StackError(
                f"{spec.name} exited during startup; log {config.log_file(spec.name)}:\n"
                + log_tail(config, spec.name)
            )
        if time.monotonic() > deadline:
            raise StackError(
                f"{spec.name} (pid {pid}) not healthy after {spec.start_timeout:.0f}s; "
                f"log {config.log_file(spec.name)}:\n" + log_tail(config, spec.name)
            )
        time.sleep(delay)
        delay = min(delay * 1.5, 0.2)


def stop(config: StackConfig, name: str, timeout: float = 20.0) -> bool:
    """Send the recorded stop signal, wait, then SIGKILL; True if something was stopped."""
    info = read_run_info(config, name)
    if info is None:
        remove_run_info(config, name)
        return False
    stopped = False
    if pid_alive(info.pid, info.argv0):
        stopped = True
        with contextlib.suppress(ProcessLookupError):
            os.kill(info.pid, info.stop_signal)
        if not _wait_gone(info.pid, timeout):
            with contextlib.suppress(ProcessLookupError):
                os.kill(info.pid, signal.SIGKILL)
            _wait_gone(info.pid, 5.0)
    remove_run_info(config, name)
    return stopped


def _wait_gone(pid: int, timeout: float) -> bool:
    deadline = time.monotonic() + timeout
    while pid_alive(pid):
        if time.monotonic() > deadline:
            return False
        time.sleep(0.02)
    return True
