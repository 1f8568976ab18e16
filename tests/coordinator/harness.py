"""Real pieces for the app-proxy tests: a small app (HTTP + WebSocket echo), a TCP echo
server, an app-proxy Envoy started from the coordinator's bootstrap, and port blocks."""

from __future__ import annotations

import asyncio
import contextlib
import json
import random
import socket
import subprocess
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import aiohttp
from aiohttp import web

from bai.coordinator.xds.bootstrap import app_proxy_process_argv, render_app_proxy_bootstrap


def free_port_block(count: int, host: str = "127.0.0.1") -> int:
    """The first of `count` consecutive ports that were all free a moment ago."""
    for _ in range(200):
        base = random.randint(20000, 45000)
        with contextlib.ExitStack() as stack:
            try:
                for port in range(base, base + count):
                    sock = stack.enter_context(socket.socket())
                    sock.bind((host, port))
            except OSError:
                continue
            return base
    raise RuntimeError(f"no block of {count} free ports")


class App:
    """The stand-in for a kernel's app: GET echoes what it saw, /ws echoes messages."""

    def __init__(self, name: str) -> None:
        self.name = name
        self.port = 0
        self._runner: web.AppRunner | None = None

    async def _index(self, request: web.Request) -> web.Response:
        seen = {"app": self.name, "path": request.path_qs, "cookie": request.headers.get("cookie")}
        return web.json_response(seen)

    async def _ws(self, request: web.Request) -> web.WebSocketResponse:
        ws = web.WebSocketResponse()
        await ws.prepare(request)
        async for msg in ws:
            if msg.type == aiohttp.WSMsgType.TEXT:
                await ws.send_str(f"{self.name}:{msg.data}")
        return ws

    async def start(self, port: int = 0) -> int:
        app = web.Application()
        app.router.add_get("/ws", self._ws)
        app.router.add_route("*", "/{tail:.*}", self._index)
        self._runner = web.AppRunner(app, access_log=None, shutdown_timeout=0.1)
        await self._runner.setup()
        site = web.TCPSite(self._runner, "127.0.0.1", port)
        await site.start()
        self.port = site._server.sockets[0].getsockname()[1]  # type: ignore[union-attr]
        return self.port

    async def stop(self) -> None:
        if self._runner is not None:
            await self._runner.cleanup()
            self._runner = None


class TcpEcho:
    def __init__(self) -> None:
        self.server: asyncio.Server | None = None
        self.port = 0

    async def _serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        while data := await reader.read(4096):
            writer.write(b"echo:" + data)
            await writer.drain()
        writer.close()

    async def start(self) -> int:
        self.server = await asyncio.start_server(self._serve, "127.0.0.1", 0)
        self.port = self.server.sockets[0].getsockname()[1]
        return self.port

    async def stop(self) -> None:
        if self.server is not None:
            self.server.close()


@dataclass
class Envoy:
    proc: subprocess.Popen[bytes]
    admin_port: int
    log: Path

    def stop(self) -> None:
        self.proc.terminate()
        try:
            self.proc.wait(10)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait(10)


def _spawn(config: Path, log: Path) -> subprocess.Popen[bytes]:
    with log.open("wb") as out:
        return subprocess.Popen(
            app_proxy_process_argv(config, log_level="warning"),
            stdout=out,
            stderr=subprocess.STDOUT,
        )


async def start_envoy(
    authority: str,
    xds_root: Path,
    authz_port: int,
    admin_port: int,
    tmp: Path,
    ads_port: int | None = None,
    internal_token: str = "",
) -> Envoy:
    """An app-proxy Envoy for `authority`: over the coordinator's ADS on `ads_port`, or
    from the xDS files under `xds_root`."""
    config = tmp / f"envoy-{admin_port}.json"
    ads = None if ads_port is None else ("127.0.0.1", ads_port)
    config.write_text(
        render_app_proxy_bootstrap(
            authority,
            xds_root,
            ("127.0.0.1", authz_port),
            admin_port,
            ads_addr=ads,
            internal_token=internal_token,
        )
    )
    log = tmp / f"envoy-{admin_port}.log"
    envoy = Envoy(_spawn(config, log), admin_port, log)
    proc = envoy.proc
    deadline = time.monotonic() + 20
    async with aiohttp.ClientSession() as http:
        while time.monotonic() < deadline:
            if proc.poll() is not None:
                raise RuntimeError(f"envoy exited {proc.returncode}:\n{log.read_text()[-3000:]}")
            with contextlib.suppress(aiohttp.ClientError):
                async with http.get(f"http://127.0.0.1:{admin_port}/ready") as resp:
                    if resp.status == 200:
                        return envoy
            await asyncio.sleep(0.05)
    envoy.stop()
    raise TimeoutError(f"envoy not ready:\n{log.read_text()[-3000:]}")


async def envoy_listeners(admin_port: int) -> list[str]:
    async with (
        aiohttp.ClientSession() as http,
        http.get(f"http://127.0.0.1:{admin_port}/listeners?format=json") as resp,
    ):
        body = json.loads(await resp.text())
    return sorted(entry["name"] for entry in body.get("listener_statuses", []))


async def envoy_stat(admin_port: int, suffix: str, contains: str = "") -> int:
    """The sum of Envoy counters whose name ends with `suffix` (and holds `contains`)."""
    async with (
        aiohttp.ClientSession() as http,
        http.get(f"http://127.0.0.1:{admin_port}/stats?format=json") as resp,
    ):
        body = json.loads(await resp.text())
    return sum(
        int(s.get("value", 0))
        for s in body.get("stats", [])
        if str(s.get("name", "")).endswith(suffix)
    )


@contextlib.contextmanager
def envoy_log_on_failure(envoy: Envoy) -> Iterator[None]:
    try:
        yield
    except BaseException:
        print(envoy.log.read_text()[-4000:])
        raise
