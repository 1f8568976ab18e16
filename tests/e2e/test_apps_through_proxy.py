"""Apps end to end: `StartService` on a real manager has a real agent start Jupyter
and the terminal in a Docker kernel, the real coordinator programs a real app-proxy
Envoy, and a browser-like client follows the URL: the one-time token becomes a
cookie, Jupyter's REST API and a kernel's WebSocket work through the proxy, the
terminal's WebSocket too; no cookie, no entry; ending the session removes the route."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import aiohttp
import pytest

from bai.client import AsyncClient
from bai.manager.apps import circuit_cleanup
from tests.e2e.agent_process import AgentProcess, MiB
from tests.e2e.app_proxy import AppProxy, app_proxy
from tests.e2e.containers import IMAGE
from tests.e2e.records import wait_session
from tests.e2e.waits import DEADLINE, eventually
from tests.manager.fixtures import ManagerHandle, unique
from tests.support.app_clients import HTTP_TIMEOUT, jupyter_runs, shell_says


@pytest.fixture
async def proxy(manager: ManagerHandle, stack: Any, tmp_path: Path) -> AsyncIterator[AppProxy]:
    async with app_proxy(manager, stack, tmp_path) as running:
        cleanup = asyncio.create_task(
            circuit_cleanup.run_forever(
                manager.ctx.sessions, manager.ctx.redis, manager.ctx.apps.coordinator
            )
        )
        try:
            yield running
        finally:
            cleanup.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await cleanup


async def test_jupyter_and_the_terminal_through_the_app_proxy(
    manager: ManagerHandle, agent: AgentProcess, client: AsyncClient, proxy: AppProxy
) -> None:
    created = await client.sessions.create_session(
        name=unique("apps"),
        image=IMAGE,
        scaling_group=agent.group,
        resource_slots={"cpu": "1", "mem": str(768 * MiB)},
        enqueue_only=True,
    )
    session_id = created.session.id
    await wait_session(manager, session_id, {"RUNNING"})

    app = (await client.sessions.start_service(session_id=session_id, service="jupyter")).app
    assert app.is_running and app.url.startswith("http://127.0.0.1:") and app.token
    base = app.url.rstrip("/")
    # No wait: StartService answers once the app proxy's Envoy has applied the circuit.

    async with aiohttp.ClientSession(timeout=HTTP_TIMEOUT) as stranger:
        async with stranger.get(f"{base}/api/status") as refused:
            assert refused.status == 401

    jar = aiohttp.CookieJar(unsafe=True)
    async with aiohttp.ClientSession(cookie_jar=jar, timeout=HTTP_TIMEOUT) as browser:
        async with browser.get(f"{app.url}?token={app.token}") as first:
            assert first.status == 200, await first.text()
            assert "token=" not in str(first.url)  # the redirect dropped it
        async with browser.get(f"{base}/api/status") as status:
            assert status.status == 200
            assert "started" in await status.json()
        # The token was used once: replaying it is refused.
        async with aiohttp.ClientSession(timeout=HTTP_TIMEOUT) as replay:
            async with replay.get(f"{app.url}?token={app.token}") as again:
                assert again.status == 401
    await jupyter_runs(base, "print(6 * 7)", "42\n", jar)

    terminal = (await client.sessions.start_service(session_id=session_id, service="ttyd")).app
    term_jar = aiohttp.CookieJar(unsafe=True)
    async with aiohttp.ClientSession(cookie_jar=term_jar, timeout=HTTP_TIMEOUT) as browser:
        async with browser.get(f"{terminal.url}?token={terminal.token}") as page:
            assert page.status == 200
    said = await shell_says(
        terminal.url.rstrip("/"), "echo id=$(id -u) sum=$((40+2))", "id=1000 sum=42", term_jar
    )
    assert "id=1000 sum=42" in said

    listed = await client.sessions.list_services(session_id=session_id)
    assert {a.service_port.name for a in listed.apps if a.is_running} == {"jupyter", "ttyd"}

    await client.sessions.destroy_session(session_id=session_id)
    await wait_session(manager, session_id, {"TERMINATED"}, DEADLINE)

    async def no_circuits() -> bool:
        return not await proxy.circuits(session_id)

    await eventually(no_circuits, "the ended session's circuits are removed")
