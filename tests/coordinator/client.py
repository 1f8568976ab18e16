"""Async HTTP helpers for the app-proxy tests (the coordinator shares the test's loop,
so a blocking client would starve its ext_authz endpoint)."""

from __future__ import annotations

import asyncio
import time
from dataclasses import dataclass

import aiohttp
from multidict import CIMultiDictProxy

from bai.api.coordinator.v1 import coordinator_pb2 as pb
from bai.coordinator.tokens import cookie_key, issue_cookie
from bai.coordinator.xds.filters import cookie_name
from tests.coordinator.conftest import SECRET

TIMEOUT = aiohttp.ClientTimeout(total=10)


@dataclass
class Reply:
    status: int
    headers: CIMultiDictProxy[str]
    body: str


async def fetch(url: str, headers: dict[str, str] | None = None) -> Reply:
    async with (
        aiohttp.ClientSession(timeout=TIMEOUT) as http,
        http.get(url, headers=headers or {}, allow_redirects=False) as resp,
    ):
        return Reply(resp.status, resp.headers, await resp.text())


def minted_cookie(circuit: pb.Circuit, user: str = "alice") -> dict[str, str]:
    """The cookie a redeemed token becomes, minted here to wait for a route."""
    value = issue_cookie(cookie_key(SECRET), circuit.id, user, 600)
    return {"cookie": f"{cookie_name(circuit.id)}={value}"}


async def wait_serving(url: str, headers: dict[str, str] | None = None) -> Reply:
    """Poll until Envoy has the circuit's listener and cluster (files -> Envoy takes ms)."""
    deadline = time.monotonic() + 10
    last: object = None
    while time.monotonic() < deadline:
        try:
            reply = await fetch(url, headers)
            if reply.status == 200:
                return reply
            last = reply.status
        except aiohttp.ClientError as exc:
            last = exc
        await asyncio.sleep(0.01)
    raise AssertionError(f"{url} never answered 200 (last: {last})")


async def wait_refused(url: str) -> None:
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline:
        try:
            await fetch(url)
        except aiohttp.ClientConnectionError:
            return
        await asyncio.sleep(0.01)
    raise AssertionError(f"{url} still accepts connections")


async def wait_listening(port: int) -> None:
    """Poll until Envoy accepts connections on `port` (its listener is in)."""
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline:
        try:
            _, writer = await asyncio.open_connection("127.0.0.1", port)
        except OSError:
            await asyncio.sleep(0.01)
            continue
        writer.close()
        return
    raise AssertionError(f"nothing listens on port {port}")
