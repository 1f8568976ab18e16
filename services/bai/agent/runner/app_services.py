"""Apps (service ports) inside the kernel, started and stopped by the runner as the
kernel's user. Stdlib only, python3.9-compatible.

How an app starts, first match wins: the image's own definition
(/etc/backend.ai/service-defs/<name>.json, upstream's format: "command" and "env",
with {ports[0]}, {port} and {home} in them), then the built-in table below
(upstream keeps such a table for its intrinsic and well-known apps). An app
listens on its container port, or, with the host's network (process runtime), on
the host port the agent gave it in BAI_PORT_<container port>. It has started once
that port accepts connections; it failed when it exits or the time runs out first.
"""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import threading
import time
from pathlib import Path

TYPE_CHECKING = False
if TYPE_CHECKING:
    from typing import Any

SERVICE_DEFS_DIR = Path("/etc/backend.ai/service-defs")
WEB_TERMINAL = "web_terminal.py"
LOG_TAIL_BYTES = 2000
POLL_SECONDS = 0.05
STOP_GRACE_SECONDS = 5.0
_JUPYTER_OPTIONS = [
    "--no-browser",
    "--ip=0.0.0.0",
    "--port={port}",
    "--ServerApp.token=",
    "--ServerApp.password=",
    "--ServerApp.allow_origin=*",
    "--ServerApp.allow_remote_access=True",
    "--ServerApp.root_dir={home}",
]
# The terminal runs from its source on stdin (see web_terminal.py): no command here.
BUILTIN_DEFS: dict[str, dict[str, Any]] = {
    "ttyd": {"command": None},
    "jupyter": {"command": ["jupyter", "notebook", *_JUPYTER_OPTIONS]},
    "jupyterlab": {"command": ["jupyter", "lab", *_JUPYTER_OPTIONS]},
}


class ServiceFailed(Exception):
    """The app could not be started; the message says why (with its log's tail)."""


def listen_ports(container_ports: list[int], environ: Any = os.environ) -> list[int]:
    return [int(environ.get(f"BAI_PORT_{port}") or port) for port in container_ports]


def service_definition(name: str, defs_dir: Path = SERVICE_DEFS_DIR) -> dict[str, Any] | None:
    path = defs_dir / f"{name}.json"
    if path.is_file():
        definition = json.loads(path.read_text("utf-8"))
        if not isinstance(definition, dict) or not isinstance(definition.get("command"), list):
            raise ServiceFailed(f"{path}: no command list")
        return definition
    return BUILTIN_DEFS.get(name)


def expand(command: list[str], ports: list[int], home: str) -> list[str]:
    return [str(part).format(port=ports[0], ports=ports, home=home) for part in command]


def port_answers(port: int) -> bool:
    try:
        with socket.create_connection(("127.0.0.1", port), timeout=1.0):
            return True
    except OSError:
        return False


class ServiceSupervisor:
    """The kernel's running apps by name; one start or stop of an app at a time."""

    def __init__(self, work_dir: Path, terminal_source: bytes) -> None:
        self.work_dir = work_dir
        # Read at start, as root: the runner's directory may be closed to the user.
        self.terminal_source = terminal_source
        self.processes: dict[str, subprocess.Popen[bytes]] = {}
        self._locks: dict[str, threading.Lock] = {}
        self._guard = threading.Lock()

    @classmethod
    def load(cls, work_dir: Path) -> ServiceSupervisor:
        try:
            source = (Path(__file__).resolve().parent / WEB_TERMINAL).read_bytes()
        except OSError:
            # The kernel still runs; only its terminal will fail to start, saying so.
            source = b"raise SystemExit('bai: the terminal is missing from the runner')"
        return cls(work_dir, source)

    def _lock(self, name: str) -> threading.Lock:
        with self._guard:
            return self._locks.setdefault(name, threading.Lock())

    def start(self, request: dict[str, Any]) -> bool:
        """Start the app unless it runs; True when it already ran. Raises ServiceFailed."""
        name = str(request["name"])
        ports = listen_ports([int(p) for p in request.get("ports") or []])
        if not ports:
            raise ServiceFailed(f"{name}: no port")
        with self._lock(name):
            running = self.processes.get(name)
            if running is not None and running.poll() is None:
                return True
            definition = service_definition(name)
            if definition is None:
                raise ServiceFailed(f"no definition for the app {name!r} in this image")
            process = self._spawn(name, definition, ports, request)
            self.processes[name] = process
            self._wait_listening(name, process, ports[0], float(request.get("timeout") or 60))
        return False

    def _spawn(
        self, name: str, definition: dict[str, Any], ports: list[int], request: dict[str, Any]
    ) -> subprocess.Popen[bytes]:
        home = str(self.work_dir)
        environ = dict(os.environ)
        environ.update({str(k): str(v) for k, v in dict(definition.get("env") or {}).items()})
        environ.update({str(k): str(v) for k, v in dict(request.get("environ") or {}).items()})
        environ.setdefault("SHELL", "/bin/bash" if os.path.exists("/bin/bash") else "/bin/sh")
        extra = [str(arg) for arg in request.get("arguments") or []]
        stdin: int | None = subprocess.DEVNULL
        if definition["command"] is None:
            argv = [sys.executable, "-", "--port", str(ports[0]), *extra]
            stdin = subprocess.PIPE
        else:
            argv = expand(definition["command"], ports, home) + extra
        # The child writes its output here; our copy of the descriptor closes below.
        log = open(f"/tmp/bai-app-{name}.log", "wb")
        try:
            process = subprocess.Popen(
                argv,
                stdin=stdin,
                stdout=log,
                stderr=subprocess.STDOUT,
                cwd=home if os.path.isdir(home) else None,
                env=environ,
                start_new_session=True,
            )
        except OSError as exc:
            raise ServiceFailed(f"{name}: cannot run {argv[0]}: {exc}") from exc
        finally:
            log.close()
        if process.stdin is not None:
            process.stdin.write(self.terminal_source)
            process.stdin.close()
        # Reaped when it exits, so that it does not linger as a zombie.
        threading.Thread(target=process.wait, daemon=True).start()
        return process

    def _wait_listening(
        self, name: str, process: subprocess.Popen[bytes], port: int, timeout: float
    ) -> None:
        deadline = time.monotonic() + timeout
        while not port_answers(port):
            if process.poll() is not None:
                raise ServiceFailed(
                    f"{name} exited with {process.returncode} before listening on {port}: "
                    + log_tail(name)
                )
            if time.monotonic() > deadline:
                self.stop(name)
                raise ServiceFailed(f"{name} did not listen on {port} within {timeout:g}s")
            time.sleep(POLL_SECONDS)
        if process.poll() is not None:
            # Something else answers on the port (the app lost the race for it).
            raise ServiceFailed(f"{name} exited with {process.returncode}: " + log_tail(name))

    def stop(self, name: str) -> bool:
        """Stop the app (its whole process group); True when it was running."""
        process = self.processes.pop(name, None)
        if process is None or process.poll() is not None:
            return False
        for signum, grace in ((signal.SIGTERM, STOP_GRACE_SECONDS), (signal.SIGKILL, None)):
            try:
                os.killpg(process.pid, signum)
            except OSError:
                break
            try:
                process.wait(grace)
                break
            except subprocess.TimeoutExpired:
                continue
        return True

    def stop_locked(self, name: str) -> bool:
        with self._lock(name):
            return self.stop(name)


def log_tail(name: str) -> str:
    try:
        with open(f"/tmp/bai-app-{name}.log", "rb") as log:
            log.seek(0, os.SEEK_END)
            log.seek(max(log.tell() - LOG_TAIL_BYTES, 0))
            return log.read().decode("utf-8", "replace").strip()
    except OSError:
        return "(no log)"
