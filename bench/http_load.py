"""HTTP load for bench/app_proxy: wrk for throughput, a small asyncio client for the rest.

Throughput comes from `wrk` (one thread, C keep-alive connections) when it is on
PATH (installed with apt-get when missing and running as root): a load generator
in Python costs as much CPU as the app on a small machine, so it would measure
CPU contention more than the proxy. Without wrk the asyncio client does it, and
says so. Sequential latency and "first 200" polling always use the asyncio client
(one connection, raw HTTP/1.1: little cost next to the app).
"""

from __future__ import annotations

import asyncio
import os
import re
import shutil
import subprocess
import time
from dataclasses import dataclass


class Connection:
    def __init__(self, port: int, headers: dict[str, str]) -> None:
        self.port = port
        extra = "".join(f"{k}: {v}\r\n" for k, v in headers.items())
        self.request = f"GET / HTTP/1.1\r\nhost: 127.0.0.1:{port}\r\n{extra}\r\n".encode()
        self.reader: asyncio.StreamReader | None = None
        self.writer: asyncio.StreamWriter | None = None

    async def open(self) -> Connection:
        self.reader, self.writer = await asyncio.open_connection("127.0.0.1", self.port)
        return self

    async def get(self) -> int:
        assert self.reader is not None and self.writer is not None
        self.writer.write(self.request)
        head = await self.reader.readuntil(b"\r\n\r\n")
        length = 0
        for line in head.split(b"\r\n")[1:]:
            name, _, value = line.partition(b":")
            if name.strip().lower() == b"content-length":
                length = int(value)
        await self.reader.readexactly(length)
        return int(head[9:12])

    def close(self) -> None:
        if self.writer is not None:
            self.writer.close()


async def python_throughput(
    port: int, headers: dict[str, str], conns: int, seconds: float
) -> float:
    done = 0
    stop_at = time.perf_counter() + seconds

    async def worker() -> None:
        nonlocal done
        conn = await Connection(port, headers).open()
        try:
            while time.perf_counter() < stop_at:
                status = await conn.get()
                if status != 200:
                    raise RuntimeError(f"status {status} from port {port}")
                done += 1
        finally:
            conn.close()

    started = time.perf_counter()
    await asyncio.gather(*(worker() for _ in range(conns)))
    return done / (time.perf_counter() - started)


def wrk_binary() -> str | None:
    """wrk's path; installed (Debian package `wrk`) when missing and running as root."""
    found = shutil.which("wrk")
    if found is None and os.geteuid() == 0 and shutil.which("apt-get"):
        subprocess.run(["apt-get", "install", "-y", "-q", "wrk"], check=False, capture_output=True)
        found = shutil.which("wrk")
    return found


def wrk_requests_per_second(output: str) -> float:
    """Requests/sec from wrk's report; raises when any answer was not 2xx or 3xx or a
    socket failed (the throughput of errors is no measure of the proxy)."""
    non_2xx = re.search(r"Non-2xx or 3xx responses:\s+(\d+)", output)
    if non_2xx and int(non_2xx.group(1)):
        raise RuntimeError(f"wrk saw {non_2xx.group(1)} non-2xx/3xx responses:\n{output}")
    errors = re.search(r"Socket errors: connect (\d+), read (\d+), write (\d+)", output)
    if errors and any(int(n) for n in errors.groups()):
        raise RuntimeError(f"wrk saw socket errors:\n{output}")
    rate = re.search(r"Requests/sec:\s+([\d.]+)", output)
    if rate is None:
        raise RuntimeError(f"no Requests/sec in wrk's output:\n{output}")
    return float(rate.group(1))


@dataclass(frozen=True)
class Load:
    """Closed-loop throughput with `client` ("wrk" or "python")."""

    client: str
    wrk: str | None = None

    async def rps(self, port: int, headers: dict[str, str], conns: int, seconds: float) -> float:
        if self.wrk is None:
            return await python_throughput(port, headers, conns, seconds)
        argv = [self.wrk, "-t1", f"-c{conns}", f"-d{max(1, round(seconds))}s", "--latency"]
        for name, value in headers.items():
            argv += ["-H", f"{name}: {value}"]
        proc = await asyncio.create_subprocess_exec(
            *argv,
            f"http://127.0.0.1:{port}/",
            stdout=asyncio.subprocess.PIPE,
            stderr=asyncio.subprocess.STDOUT,
        )
        out, _ = await proc.communicate()
        if proc.returncode != 0:
            raise RuntimeError(f"wrk exited {proc.returncode}:\n{out.decode()}")
        return wrk_requests_per_second(out.decode())


def load_client() -> Load:
    wrk = wrk_binary()
    return Load("wrk", wrk) if wrk else Load("python")


async def latencies(port: int, headers: dict[str, str], count: int) -> list[float]:
    conn = await Connection(port, headers).open()
    samples = []
    try:
        for _ in range(count):
            started = time.perf_counter()
            status = await conn.get()
            samples.append((time.perf_counter() - started) * 1000)
            if status != 200:
                raise RuntimeError(f"status {status} from port {port}")
    finally:
        conn.close()
    return samples


async def first_success(port: int, headers: dict[str, str]) -> None:
    while True:
        try:
            conn = await Connection(port, headers).open()
        except OSError:
            await asyncio.sleep(0.001)
            continue
        try:
            if await conn.get() == 200:
                return
        except (OSError, asyncio.IncompleteReadError):
            pass
        finally:
            conn.close()
        await asyncio.sleep(0.001)
