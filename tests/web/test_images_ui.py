"""The Images page and committing a session to an image, in headless Chromium through a
real Envoy (grpc-web), against a real manager and the fake agent of the session tests
(tests/manager/sessions/fake_agent.py, which implements CommitKernel): the page lists and
describes the image a session runs; a RUNNING session's view commits it, follows the
background task to the new image's name, and the image is then among "Mine only"."""

from __future__ import annotations

import json

import grpc
import pytest

from tests.manager.fixtures import ManagerHandle
from tests.manager.sessions.fake_agent import IMAGE
from tests.manager.sessions.helpers import (
    agents,
    create,
    create_request,
    make_group,
    member,
    wait_status,
)
from tests.web import test_sessions_ui as sessions_ui
from tests.web.harness import text
from tests.web.test_sessions_ui import AGENT_SLOTS, Page, text_with

pytestmark = pytest.mark.slow


# The browser behind Envoy, and the fake agent's registry allowed, one per module.
page = sessions_ui.page
image_listed = sessions_ui.image_listed


def image_rows() -> str:
    """JS: the Images table's rows as [canonical, origin] pairs."""
    return (
        "[...document.querySelectorAll('#panel-images tbody tr')]"
        ".map(r => [r.cells[0].innerText, r.cells[5].innerText])"
    )


def row_with(canonical: str) -> str:
    """JS: the Images table row whose image is `canonical`, or undefined."""
    return (
        "[...document.querySelectorAll('#panel-images tbody tr')]"
        f".find(r => r.cells[0].innerText === {canonical!r})"
    )


async def sign_in(page: Page, email: str, hash_: str = "") -> None:
    await page.open()
    await page.js("sessionStorage.clear(); true")
    await page.open(hash_)
    await page.login(email)


async def test_the_images_page_lists_and_describes_the_session_image(
    manager: ManagerHandle, channel: grpc.aio.Channel, page: Page
) -> None:
    group = await make_group(manager)
    user = await member(manager)
    async with agents(channel, group, AGENT_SLOTS) as (agent,):
        session = await create(channel, user, create_request(group))
        await wait_status(manager, session.id, {"RUNNING"})
        await sign_in(page, user.email, "#/images")
        assert await page.js("document.querySelector('#nav a.active').id") == "nav-images"
        await page.wait(f"!!{row_with(session.image)}")
        assert session.image == IMAGE
        row = await page.js(f"{row_with(IMAGE)}.innerText")
        assert "x86_64" in row and "compute" in row

        # A click anywhere in the row shows the image (GetImage).
        await page.js(f"{row_with(IMAGE)}.cells[1].click(); true")
        await page.wait(f"{text('#image-details-name')} === {IMAGE!r}")
        assert agent.agent_id in await page.wait(text_with("#image-details-agents", agent.agent_id))
        limits = await page.js(text("#image-details-limits tbody"))
        assert "mem\t64 MiB\tno limit" in limits
        for part in ("ports", "limits", "labels"):
            assert await page.js(f"!!document.getElementById('image-details-{part}')") is True
        await page.screenshot("image-details")

        # The name filter asks the server (name_contains): nothing matches this.
        await page.js(
            "const f = document.getElementById('images-name');"
            "f.value = 'no-such-image'; f.dispatchEvent(new Event('input')); true"
        )
        assert await page.wait(text_with("#panel-images .table-body", "Nothing")) == (
            "Nothing to show."
        )


async def test_commit_a_running_session_and_find_its_image_among_mine(
    manager: ManagerHandle, channel: grpc.aio.Channel, page: Page
) -> None:
    group = await make_group(manager)
    user = await member(manager)
    async with agents(channel, group, AGENT_SLOTS) as (agent,):
        session = await create(channel, user, create_request(group))
        await wait_status(manager, session.id, {"RUNNING"})
        await sign_in(page, user.email, f"#/sessions/{session.id}")
        await page.wait("!document.getElementById('session-commit').hidden")

        async def commit(name: str, tag: str) -> None:
            await page.js(
                f"document.getElementById('commit-name').value = {json.dumps(name)};"
                f"document.getElementById('commit-tag').value = {json.dumps(tag)};"
                "document.getElementById('commit-form').requestSubmit(); true"
            )

        # A bad name is refused by the manager; the violation shows next to the field.
        await commit("Bad Name!", "v1")
        field_error = await page.wait(text("#commit-name-error"))
        assert "a-z" in field_error
        assert await page.js(text("#commit-tag-error")) == ""
        assert "INVALID_FIELD" in await page.js(text("#commit-progress .error"))
        assert agent.state.commits == []

        await commit("web-env", "v1")
        want = f"bai.local/customized/{user.user_id.hex}/web-env:v1"
        assert await page.wait(text("#commit-image")) == want
        assert await page.js("document.getElementById('commit-progress').dataset.status") == "DONE"
        assert await page.js(text("#commit-name-error")) == ""
        (sent,) = agent.state.commits
        assert sent.target.canonical == want
        await page.screenshot("session-committed")

        # The Images page has it; "Mine only" lists nothing else.
        await page.js("location.hash = '#/images'; true")
        await page.wait(f"!!{row_with(IMAGE)}")
        await page.js(
            "const m = document.getElementById('images-mine');"
            "m.checked = true; m.dispatchEvent(new Event('change')); true"
        )
        mine = await page.wait(f"!{row_with(IMAGE)} && {image_rows()}.length && {image_rows()}")
        assert mine == [[want, "customized, local"]]
