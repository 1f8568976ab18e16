"""Who may reach an app through Envoy: tokens, cookies, other users, public circuits, IPs."""

from __future__ import annotations

import pytest

from bai.coordinator.tokens import issue_app_token
from bai.coordinator.xds.filters import cookie_name
from tests.coordinator.client import fetch, minted_cookie, wait_listening, wait_serving
from tests.coordinator.conftest import SECRET, Proxy
from tests.coordinator.harness import App


@pytest.fixture(scope="module")
async def app() -> App:
    app = App("app-a")
    await app.start()
    yield app  # type: ignore[misc]
    await app.stop()


async def test_token_becomes_cookie_and_the_redirect_strips_it(proxy: Proxy, app: App) -> None:
    circuit = await proxy.create(app.port)
    await wait_serving(circuit.url, minted_cookie(circuit))
    token = await proxy.token(circuit)

    first = await fetch(f"{circuit.url}notebooks/x?token={token}&theme=dark")

    assert first.status == 302, first.body
    assert first.headers["location"] == "/notebooks/x?theme=dark"
    set_cookie = first.headers["set-cookie"]
    assert set_cookie.startswith(f"{cookie_name(circuit.id)}=") and "HttpOnly" in set_cookie
    cookie = {"cookie": set_cookie.split(";", 1)[0]}
    followed = await fetch(circuit.url.rstrip("/") + first.headers["location"], cookie)
    assert followed.status == 200
    assert '"app": "app-a"' in followed.body and token not in followed.body


async def test_no_token_or_cookie_is_refused(proxy: Proxy, app: App) -> None:
    circuit = await proxy.create(app.port)
    await wait_serving(circuit.url, minted_cookie(circuit))

    reply = await fetch(circuit.url)

    assert reply.status == 401
    assert "needs a token" in reply.body


async def test_a_token_works_once(proxy: Proxy, app: App) -> None:
    circuit = await proxy.create(app.port)
    await wait_serving(circuit.url, minted_cookie(circuit))
    token = await proxy.token(circuit)
    assert (await fetch(f"{circuit.url}?token={token}")).status == 302

    replay = await fetch(f"{circuit.url}?token={token}")

    assert replay.status == 401 and "already used" in replay.body
    bearer = await fetch(circuit.url, {"authorization": f"Bearer {token}"})
    assert bearer.status == 401


async def test_an_expired_token_is_refused(proxy: Proxy, app: App) -> None:
    circuit = await proxy.create(app.port)
    await wait_serving(circuit.url, minted_cookie(circuit))
    expired, _ = issue_app_token(SECRET, circuit.id, "alice", ttl_seconds=-60)

    reply = await fetch(f"{circuit.url}?token={expired}")

    assert reply.status == 401 and "expired" in reply.body


async def test_another_users_token_and_cookie_are_refused(proxy: Proxy, app: App) -> None:
    alices = await proxy.create(app.port, user="alice")
    bobs = await proxy.create(app.port, user="bob")
    await wait_serving(alices.url, minted_cookie(alices))
    await wait_serving(bobs.url, minted_cookie(bobs, "bob"))

    # Bob's token for his own app, at Alice's app.
    bobs_token = await proxy.token(bobs)
    assert (await fetch(f"{alices.url}?token={bobs_token}")).status == 403
    # A token for Alice's app issued to Bob.
    for_bob = await proxy.token(alices, user="bob")
    refused = await fetch(f"{alices.url}?token={for_bob}")
    assert refused.status == 403 and "another user" in refused.body
    # Bob's cookie, under the name of Alice's circuit.
    bobs_cookie = minted_cookie(bobs, "bob")["cookie"].split("=", 1)[1]
    stolen = {"cookie": f"{cookie_name(alices.id)}={bobs_cookie}"}
    assert (await fetch(alices.url, stolen)).status == 401
    # Bob's cookie under its own name does nothing at Alice's app either.
    assert (await fetch(alices.url, minted_cookie(bobs, "bob"))).status == 401


async def test_open_to_public_needs_no_token(proxy: Proxy, app: App) -> None:
    circuit = await proxy.create(app.port, public=True)

    reply = await wait_serving(circuit.url)

    assert '"app": "app-a"' in reply.body


async def test_allowed_client_ips_are_enforced(proxy: Proxy, app: App) -> None:
    elsewhere = await proxy.create(app.port, public=True, allowed=("10.20.0.0/16",))
    here = await proxy.create(app.port, public=True, allowed=("10.20.0.0/16", "127.0.0.1"))
    private_elsewhere = await proxy.create(app.port, allowed=("192.0.2.0/24",))

    await wait_serving(here.url)
    await wait_listening(elsewhere.port)
    await wait_listening(private_elsewhere.port)
    assert (await fetch(elsewhere.url)).status == 403
    # A valid cookie does not help from an address outside the list.
    assert (await fetch(private_elsewhere.url, minted_cookie(private_elsewhere))).status == 403
    token = await proxy.token(private_elsewhere)
    assert (await fetch(f"{private_elsewhere.url}?token={token}")).status == 403
