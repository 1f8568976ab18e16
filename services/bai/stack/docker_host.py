"""The host's Docker daemon: installed and started when absent, never stopped by us.

dockerd is a machine-wide daemon (one per host, shared by every stack and by
tests), so it is not a stack component with a pid file in a state dir:
`ensure_dockerd` installs Debian's docker.io when `dockerd` is missing, starts
it detached when its socket does not answer (root only), and waits until it
serves. `bai stack down` leaves it running, like a system service.
"""

from __future__ import annotations

import os
import shutil
import socket
import subprocess
import time
from pathlib import Path

from bai.stack.errors import StackError
from bai.stack.install import install_packages

DOCKER_SOCKET = Path("/var/run/docker.sock")
DOCKERD_LOG = Path("/var/log/bai-dockerd.log")


def docker_answers(sock: Path = DOCKER_SOCKET, timeout: float = 1.0) -> bool:
    """True when the daemon answers GET /_ping on its unix socket."""
    if not sock.exists():
        return False
    try:
        with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as conn:
            conn.settimeout(timeout)
            conn.connect(str(sock))
            conn.sendall(b"GET /_ping HTTP/1.0\r\nHost: docker\r\n\r\n")
            return conn.recv(64).startswith(b"HTTP/1.")
    except OSError:
        return False


def ensure_dockerd(timeout: float = 60.0) -> bool:
    """Make sure dockerd serves; returns True when this call started it."""
    if docker_answers():
        return False
    if shutil.which("dockerd") is None:
        install_packages(["docker.io"])
    if os.geteuid() != 0:
        raise StackError("dockerd is not running and starting it needs root")
    with DOCKERD_LOG.open("ab") as log:
        subprocess.Popen(
            ["dockerd"],
            stdin=subprocess.DEVNULL,
            stdout=log,
            stderr=log,
            start_new_session=True,
        )
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if docker_answers():
            return True
        time.sleep(0.2)
    raise StackError(f"dockerd did not answer within {timeout:.0f} s (log: {DOCKERD_LOG})")
