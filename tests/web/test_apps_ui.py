"""The session view's Apps panel in headless Chromium, through a real Envoy (grpc-web),
against the real manager, the fake agent of the session tests (it offers "ttyd" and
"jupyter") and the fake app-proxy Coordinator of the manager's app tests.

The fake Coordinator's URLs serve nothing, so the page's window.open is replaced by a
recorder: it returns a stand-in tab whose location the page sets once StartService answers.
"""

from __future__ import annotations

import json

import grpc
import pytest

from tests.manager.apps.fake_coordinator import TOKEN, serving_coordinator
from tests.manager.apps.test_session_apps import coordinator_at
from tests.manager.fixtures import ManagerHandle
from tests.manager.sessions.helpers import agents, create, create_request, make_group, member
from tests.web import test_sessions_ui as sessions_ui
from tests.web.harness import text
from tests.web.test_sessions_ui import AGENT_SLOTS, Page

pytestmark = pytest.mark.slow

page = sessions_ui.page  # the browser behind Envoy, one per module

RECORD_WINDOW_OPEN = """
window.openedTabs = [];
window.open = (url, target, features) => {
  const tab = {
    url, target, features, opener: window, closed: false,
    location: {href: url}, close() { this.closed = true; },
  };
  window.openedTabs.push(tab);
  return tab;
};
true
"""


def app_row(name: str) -> str:
    """JS: the Apps table row of app `name`, or null."""
    return f"document.querySelector({json.dumps(f'#session-apps tr[data-app={name!r}]')})"


def click(name: str, button: str) -> str:
    """JS: click the `button` ("open" or "stop") of app `name`."""
    return f"{app_row(name)}.querySelector('.app-{button}').click(); true"


async def test_list_open_and_stop_apps(
    manager: ManagerHandle, channel: grpc.aio.Channel, page: Page
) -> None:
    group = await make_group(manager)
    user = await member(manager)
    async with (
        serving_coordinator() as (coordinator, address),
        coordinator_at(manager, address, TOKEN),
        agents(channel, group, AGENT_SLOTS),
    ):
        session = await create(channel, user, create_request(group, enqueue_only=False))
        await page.open()
        await page.js("sessionStorage.clear(); true")
        await page.open(f"#/sessions/{session.id}")
        await page.login(user.email)
        await page.js(RECORD_WINDOW_OPEN)

        rows = await page.wait(
            "[...document.querySelectorAll('#session-apps tbody tr')].map(r => r.dataset.app)"
            ".join(',')"
        )
        assert rows == "ttyd,jupyter"
        jupyter = await page.js(f"{app_row('jupyter')}.innerText")
        assert "http" in jupyter and "8080" in jupyter and "stopped" in jupyter
        assert await page.js(f"!{app_row('jupyter')}.querySelector('.app-stop')") is True

        # Open: StartService makes the circuit; the tab goes to the URL with the token.
        await page.js(click("jupyter", "open"))
        running = await page.wait(
            f"!!{app_row('jupyter')}.querySelector('.app-stop') && {app_row('jupyter')}.innerText"
        )
        (circuit,) = coordinator.circuits.values()
        assert circuit.app == "jupyter" and list(circuit.session_ids) == [session.id]
        assert circuit.url in running
        token = "app-token-0"
        assert coordinator.tokens == [(circuit.id, str(user.user_id))]
        tabs = await page.js(
            "window.openedTabs.map(t => ({target: t.target, href: t.location.href,"
            " opener: t.opener, closed: t.closed}))"
        )
        assert tabs == [
            {
                "target": "_blank",
                "href": f"{circuit.url}?token={token}",
                "opener": None,
                "closed": False,
            }
        ]
        assert "stopped" in await page.js(f"{app_row('ttyd')}.innerText")
        await page.screenshot("session-apps")

        # Stop: ShutdownService removes the circuit; the row shows the app stopped.
        await page.js(click("jupyter", "stop"))
        await page.wait(f"!{app_row('jupyter')}.querySelector('.app-stop')")
        assert coordinator.circuits == {}
        assert "stopped" in await page.js(f"{app_row('jupyter')}.innerText")

        # Without a Coordinator Open fails: the reason shows and the waiting tab closes.
        async with coordinator_at(manager, "", ""):
            await page.js(click("ttyd", "open"))
            error = await page.wait(text("#session-apps .error"))
        assert "DEPENDENCY_UNAVAILABLE" in error
        assert await page.js("window.openedTabs.map(t => t.closed)") == [False, True]
        assert coordinator.circuits == {}
