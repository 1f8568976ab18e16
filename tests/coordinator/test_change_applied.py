"""CreateCircuit, UpdateRoutes and DeleteCircuit answer once the worker's Envoy (on ADS)
runs the change: the caller's very first request after the reply is served, with no retry,
and a deleted circuit's listener is gone."""

from __future__ import annotations

from collections.abc import AsyncIterator

import aiohttp
import pytest

from bai.api.coordinator.v1 import coordinator_pb2 as pb
from tests.coordinator.client import fetch, minted_cookie
from tests.coordinator.conftest import Proxy, internal
from tests.coordinator.harness import App, envoy_listeners, envoy_log_on_failure

# Only an Envoy on ADS tells the coordinator what it applied; files mode answers at once.
pytestmark = pytest.mark.parametrize("proxy", ["ads"], indirect=True)


@pytest.fixture
async def apps() -> AsyncIterator[tuple[App, App]]:
    first, second = App("app-a"), App("app-b")
    await first.start()
    await second.start()
    yield first, second
    await first.stop()
    await second.stop()


async def test_the_first_request_after_create_circuit_is_served_and_delete_closes_it(
    proxy: Proxy, apps: tuple[App, App]
) -> None:
    app, _ = apps
    with envoy_log_on_failure(proxy.envoy):
        for _ in range(10):
            circuit = await proxy.create(app.port)
            reply = await fetch(circuit.url, minted_cookie(circuit))
            assert reply.status == 200, reply.body
            assert '"app": "app-a"' in reply.body
            await proxy.delete(circuit)
            with pytest.raises(aiohttp.ClientConnectorError):
                await fetch(circuit.url, minted_cookie(circuit))
            listener = f"circuit_{circuit.id.replace('-', '')}"
            assert listener not in await envoy_listeners(proxy.envoy.admin_port)


async def test_the_first_request_after_update_routes_reaches_the_new_route(
    proxy: Proxy, apps: tuple[App, App]
) -> None:
    first, second = apps
    circuit = await proxy.create(first.port, public=True)
    assert '"app": "app-a"' in (await fetch(circuit.url)).body
    with envoy_log_on_failure(proxy.envoy):
        for app in (second, first, second):
            await proxy.circuits.UpdateRoutes(
                pb.UpdateRoutesRequest(
                    circuit_id=circuit.id,
                    routes=[pb.Route(route_id="r", kernel_host="127.0.0.1", kernel_port=app.port)],
                ),
                metadata=internal(),
            )
            reply = await fetch(circuit.url)
            assert reply.status == 200, reply.body
            assert f'"app": "{app.name}"' in reply.body
