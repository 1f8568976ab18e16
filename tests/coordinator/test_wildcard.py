"""WILDCARD mode: one Envoy port, one subdomain per circuit, the same auth as port mode."""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator

import pytest

from bai.api.coordinator.v1 import coordinator_pb2 as pb
from bai.stack.testing import free_ports
from tests.coordinator.client import fetch, minted_cookie, wait_serving
from tests.coordinator.conftest import Proxy, internal
from tests.coordinator.harness import App, Envoy, start_envoy

DOMAIN = "apps.test"


@pytest.fixture(scope="module")
async def wildcard(proxy: Proxy, tmp_path_factory: pytest.TempPathFactory) -> AsyncIterator[int]:
    port, admin = free_ports(2)
    authority = f"127.0.0.1:{port}"
    await proxy.workers.RegisterWorker(
        pb.RegisterWorkerRequest(
            authority=authority,
            frontend_mode=pb.FRONTEND_MODE_WILDCARD,
            hostname=DOMAIN,
            wildcard_domain=DOMAIN,
            available_slots=10,
        ),
        metadata=internal(),
    )
    envoy: Envoy = await start_envoy(
        authority,
        proxy.config.xds.directory,
        proxy.running.authz_port,
        admin,
        tmp_path_factory.mktemp("wildcard"),
    )
    try:
        yield port
    finally:
        envoy.stop()


async def create(proxy: Proxy, app: App, public: bool = False) -> pb.Circuit:
    reply = await proxy.circuits.CreateCircuit(
        pb.CreateCircuitRequest(
            request_id=str(uuid.uuid4()),
            app="Jupyter Lab",
            frontend_mode=pb.FRONTEND_MODE_WILDCARD,
            user_id="alice",
            open_to_public=public,
            routes=[pb.Route(route_id="k", kernel_host="127.0.0.1", kernel_port=app.port)],
        ),
        metadata=internal(),
    )
    return reply.circuit


async def test_subdomains_route_and_authorize(proxy: Proxy, wildcard: int) -> None:
    app = App("wild")
    await app.start()
    try:
        private = await create(proxy, app)
        public = await create(proxy, app, public=True)
        assert private.subdomain.startswith("jupyter-lab-")
        assert private.url == f"http://{private.subdomain}.{DOMAIN}:{wildcard}/"
        base = f"http://127.0.0.1:{wildcard}/"

        def host(c: pb.Circuit) -> dict[str, str]:
            return {"host": f"{c.subdomain}.{DOMAIN}:{wildcard}"}

        await wait_serving(base, host(public))
        await wait_serving(base, {**host(private), **minted_cookie(private)})
        assert (await fetch(base, host(private))).status == 401
        token = await proxy.token(private)
        redeemed = await fetch(f"{base}lab?token={token}", host(private))
        assert redeemed.status == 302 and redeemed.headers["location"] == "/lab"
        cookie = {"cookie": redeemed.headers["set-cookie"].split(";", 1)[0]}
        assert (await fetch(f"{base}lab", {**host(private), **cookie})).status == 200
        # Its cookie does not open another circuit's subdomain on the same port.
        other = await create(proxy, app)
        await wait_serving(base, {**host(other), **minted_cookie(other)})
        assert (await fetch(base, {**host(other), **cookie})).status == 401
        # An unknown subdomain matches no virtual host.
        assert (await fetch(base, {"host": f"nothing.{DOMAIN}"})).status == 404
    finally:
        await app.stop()
