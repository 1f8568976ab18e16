"""Health checks: small callables that return True when a service answers."""

from __future__ import annotations

import json
import socket
import subprocess
import urllib.error
import urllib.request
from collections.abc import Callable, Sequence

from bai.stack.spec import HealthCheck

TIMEOUT = 3.0


def tcp_open(host: str, port: int, timeout: float = TIMEOUT) -> bool:
    """True when something accepts TCP connections on host:port."""
    try:
        with socket.create_connection((host, port), timeout=timeout):
            return True
    except OSError:
        return False


def tcp_check(host: str, port: int) -> HealthCheck:
    return lambda: tcp_open(host, port)


# Local services: never go through an http_proxy from the environment.
_opener = urllib.request.build_opener(urllib.request.ProxyHandler({}))


def http_get(url: str, timeout: float = TIMEOUT) -> tuple[int, bytes] | None:
    """Status and body of a GET, or None when nothing answered."""
    try:
        with _opener.open(url, timeout=timeout) as resp:
            return int(resp.status), resp.read()
    except urllib.error.HTTPError as exc:
        return exc.code, exc.read()
    except (OSError, ValueError):
        return None


def http_ok(url: str, accept: Callable[[bytes], bool] | None = None) -> HealthCheck:
    """Healthy when GET ``url`` answers 200 (and ``accept(body)`` holds, if given)."""

    def check() -> bool:
        got = http_get(url)
        if got is None or got[0] != 200:
            return False
        return accept is None or accept(got[1])

    return check


def etcd_healthy(body: bytes) -> bool:
    try:
        return str(json.loads(body).get("health")) == "true"
    except (ValueError, AttributeError):
        return False


def redis_ping(host: str, port: int, timeout: float = TIMEOUT) -> bool:
    """True when Redis answers PING with PONG (speaks RESP directly, no client)."""
    try:
        with socket.create_connection((host, port), timeout=timeout) as sock:
            sock.sendall(b"*1\r\n$4\r\nPING\r\n")
            return sock.recv(64).startswith(b"+PONG")
    except OSError:
        return False


def command_ok(argv: Sequence[str], timeout: float = 5.0) -> HealthCheck:
    """Healthy when ``argv`` exits 0."""

    def check() -> bool:
        try:
            done = subprocess.run(
                list(argv),
                stdin=subprocess.DEVNULL,
                stdout=subprocess.DEVNULL,
                stderr=subprocess.DEVNULL,
                timeout=timeout,
                check=False,
            )
        except (OSError, subprocess.TimeoutExpired):
            return False
        return done.returncode == 0

    return check
