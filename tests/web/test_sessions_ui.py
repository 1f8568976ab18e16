"""The Sessions page in headless Chromium, through a real Envoy (grpc-web), against a
real manager (PostgreSQL, Redis, the scheduler) and the fake agent of the session tests
(tests/manager/sessions/fake_agent.py), so that sessions really reach RUNNING.

The manager and the fake agent live on this test's event loop; the CDP browser client
blocks, so every browser step runs in a worker thread (`Page`) while the loop serves.
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import grpc
import pytest

from bai.api.common.v1 import session_pb2 as common
from bai.api.manager.v1 import session_pb2 as pb
from bai.manager.agents.images import split_canonical
from bai.manager.db.identity import DomainRow
from tests.manager.fixtures import ManagerHandle
from tests.manager.sessions.fake_agent import IMAGE
from tests.manager.sessions.helpers import (
    GiB,
    agents,
    call,
    create,
    create_request,
    kernels_of,
    make_group,
    member,
    status_of,
)
from tests.web.cdp import Browser
from tests.web.harness import (
    chromium_or_skip,
    envoy_in_front,
    login,
    require_bundle_and_envoy,
    text,
)

pytestmark = pytest.mark.slow

PASSWORD = "test-password-1"  # tests.manager.callers gives every caller this password
AGENT_SLOTS = {"cpu": "4", "mem": str(8 * GiB)}


@dataclass
class Page:
    """The browser, driven from worker threads so that the event loop keeps serving."""

    browser: Browser
    url: str
    shots: Path  # screenshots of the pages under test, for a look after a failure

    async def wait(self, expression: str, limit: float = 20) -> Any:
        """Poll until `expression` is truthy (`limit` bounds a hang; it is not a timing check)."""
        return await asyncio.to_thread(self.browser.wait_for, expression, limit)

    async def js(self, expression: str) -> Any:
        return await asyncio.to_thread(self.browser.evaluate, expression)

    async def screenshot(self, name: str) -> None:
        await asyncio.to_thread(self.browser.screenshot, self.shots / f"{name}.png")

    async def open(self, hash_: str = "") -> None:
        await asyncio.to_thread(self.browser.navigate, self.url + hash_)

    async def login(self, user: str) -> None:
        await asyncio.to_thread(login, self.browser, user, PASSWORD)
        await self.wait(text("#whoami-user"))


@pytest.fixture(scope="module")
def page(manager: ManagerHandle, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Page]:
    require_bundle_and_envoy()
    chromium = chromium_or_skip()
    tmp = tmp_path_factory.mktemp("web-sessions")
    host, port = manager.address.rsplit(":", 1)
    with envoy_in_front(tmp, (host, int(port))) as envoy_port:
        browser = Browser(chromium, tmp / "profile", height=1800)  # a whole session view
        try:
            yield Page(browser, f"http://127.0.0.1:{envoy_port}/ui/", tmp)
        finally:
            browser.close()


@pytest.fixture(scope="module", autouse=True)
async def image_listed(manager: ManagerHandle) -> AsyncIterator[None]:
    """Users list only images of their domain's allowed registries: allow the fake
    agent's registry in the default domain while these tests run."""
    registry = split_canonical(IMAGE).registry

    async def allow(on: bool) -> None:
        async with manager.ctx.sessions() as db, db.begin():
            domain = await db.get(DomainRow, "default")
            assert domain is not None
            others = [r for r in domain.allowed_docker_registries if r != registry]
            domain.allowed_docker_registries = [*others, registry] if on else others

    await allow(True)
    yield
    await allow(False)


async def fill_launch_form(page: Page, group: str, **values: str) -> None:
    """Wait until the form offers the test image and `group`, fill it, submit it."""
    has_image = (
        "[...document.querySelectorAll('#launch-image option')]"
        f".find(o => o.textContent.startsWith({IMAGE!r}))?.value"
    )
    image_index = await page.wait(has_image)
    await page.wait(f"!!document.querySelector('#launch-group option[value={json.dumps(group)}]')")
    fields = {"image": image_index, "group": group, **values}
    assignments = "".join(
        f"document.getElementById('launch-{k}').value = {json.dumps(v)};" for k, v in fields.items()
    )
    await page.js(
        assignments + "document.getElementById('launch-type').dispatchEvent(new Event('change'));"
        "document.getElementById('launch-form').requestSubmit(); true"
    )


def text_with(selector: str, needle: str) -> str:
    """JS: the text of `selector` once it contains `needle`, else false."""
    return f"{text(selector)}.includes({needle!r}) && {text(selector)}"


def row_of(name: str) -> str:
    """JS: the text of the sessions table row whose name is `name`, or ''."""
    return (
        "([...document.querySelectorAll('#panel-my-sessions tbody tr')]"
        f".find(r => r.cells[0].innerText === {name!r})?.innerText ?? '')"
    )


async def test_launch_follow_open_and_destroy_a_session(
    manager: ManagerHandle, channel: grpc.aio.Channel, page: Page
) -> None:
    group = await make_group(manager)
    user = await member(manager)
    async with agents(channel, group, AGENT_SLOTS) as (agent,):
        await page.open()
        await page.login(user.email)
        assert await page.js("document.getElementById('nav-admin').hidden") is True

        await fill_launch_form(page, group, name="web-one", cpu="1", mem="0.5")
        # The form shows the transitions as they come, from PENDING to RUNNING.
        progress = await page.wait(
            "document.getElementById('launch-progress').dataset.status === 'RUNNING'"
            " && document.getElementById('launch-progress').innerText"
        )
        assert progress.startswith("web-one: PENDING")
        assert "SCHEDULED" in progress and progress.endswith("RUNNING")
        session_id = (await page.js("document.querySelector('#launch-progress a').hash")).split(
            "/"
        )[-1]
        assert await status_of(manager, session_id) == "RUNNING"

        # The list follows the event feed: the new session shows RUNNING without a reload.
        row = await page.wait(f"{row_of('web-one')}.includes('RUNNING') && {row_of('web-one')}")
        assert "interactive" in row and IMAGE in row and "cpu 1 · mem 512 MiB" in row
        assert await page.js("document.getElementById('sessions-feed').dataset.mode") == "live"
        await page.screenshot("sessions")

        # The session view: history, kernels, a stats sample, logs, the code note.
        await page.js("document.querySelector('#launch-progress a').click(); true")
        history = await page.wait(text_with("#session-history tbody", "RUNNING"))
        lines = [line.split("\t")[0] for line in history.splitlines()]
        assert lines[0] == "PENDING" and lines[-1] == "RUNNING" and "SCHEDULED" in lines
        kernels = await page.js(text("#session-kernels tbody"))
        assert "main1" in kernels and "RUNNING" in kernels and agent.agent_id in kernels
        assert await page.wait(text("#session-stats td.cpu")) == "12.5"
        assert "booting\nready\nserving" in await page.wait(
            text_with("#session-logs pre", "serving")
        )
        assert "Execute" in await page.js(text("#session-code-note"))
        await page.js(
            "const c = document.getElementById('session-code-input');"
            "c.value = \"print('hi')\"; c.dispatchEvent(new Event('input')); true"
        )
        assert (
            await page.js(text("#session-code-cli"))
            == "bai session exec web-one 'print('\\''hi'\\'')'"
        )
        assert await page.js("document.getElementById('session-diagnostics').hidden") is True
        await page.screenshot("session-running")

        # Destroy: the view follows the events to TERMINATED; the agent was asked.
        await page.js("document.getElementById('session-destroy').click(); true")
        await page.wait("document.getElementById('session-head').dataset.status === 'TERMINATED'")
        assert await status_of(manager, session_id) == "TERMINATED"
        kernel_ids = [str(k.id) for k in await kernels_of(manager, session_id)]
        assert agent.state.destroyed == kernel_ids
        assert await page.js("document.getElementById('session-destroy').disabled") is True
        final = await page.js(text("#session-history tbody"))
        assert "TERMINATING" in final and "user-requested" in final

        await page.js("location.hash = '#/sessions'; true")
        await page.wait(f"{row_of('web-one')}.includes('TERMINATED')")
        assert await page.js("document.getElementById('sessions-feed').dataset.mode") == "live"


async def test_a_session_that_cannot_fit_shows_why_it_is_pending(
    manager: ManagerHandle, channel: grpc.aio.Channel, page: Page
) -> None:
    group = await make_group(manager)
    user = await member(manager)
    async with agents(channel, group, AGENT_SLOTS):
        # 3 of the agent's 4 cores are taken: a 2-core session has to wait.
        first = create_request(group, {"cpu": "3", "mem": str(GiB)}, enqueue_only=False)
        running = await create(channel, user, first)
        assert running.status == common.SESSION_STATUS_RUNNING
        await page.open()
        await page.js("sessionStorage.clear(); true")
        await page.open()
        await page.login(user.email)
        await fill_launch_form(page, group, name="web-big", cpu="2", mem="1")
        await page.wait("document.getElementById('launch-progress').dataset.status === 'PENDING'")
        await page.js("document.querySelector('#launch-progress a').click(); true")
        why = await page.wait(
            f"!document.getElementById('session-diagnostics').hidden"
            f" && {text('#session-diagnostics ul')}"
        )
        assert "agent resources" in why and "cpu: asked 2" in why
        await page.screenshot("session-pending")

        # Destroying a session that never ran cancels it.
        await page.js("document.getElementById('session-destroy').click(); true")
        await page.wait("document.getElementById('session-head').dataset.status === 'CANCELLED'")
        assert await page.js("document.getElementById('session-diagnostics').hidden") is True
        await call(channel, user, "DestroySession", pb.DestroySessionRequest(session_id=running.id))


async def test_bad_input_shows_the_field_violations(
    manager: ManagerHandle, channel: grpc.aio.Channel, page: Page
) -> None:
    group = await make_group(manager)
    user = await member(manager)
    async with agents(channel, group, AGENT_SLOTS):
        await page.open()
        await page.js("sessionStorage.clear(); true")
        await page.open()
        await page.login(user.email)
        # The manager checks names (4-64 of [A-Za-z0-9._-]); the page shows the violation.
        await fill_launch_form(page, group, name="x!")
        err = await page.wait(text("#launch-progress .error"))
        assert "INVALID_FIELD" in err and "name: " in err
