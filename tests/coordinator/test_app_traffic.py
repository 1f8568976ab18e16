"""What flows through a circuit: HTTP, WebSocket, raw TCP, weighted routes; and what a
client sees when the app is gone or the circuit is deleted."""

from __future__ import annotations

import asyncio
from collections import Counter

import aiohttp
import grpc
import pytest
from grpc_health.v1 import health, health_pb2, health_pb2_grpc

from bai.api.common.v1 import session_pb2 as common
from bai.api.coordinator.v1 import coordinator_pb2 as pb
from bai.stack.testing import free_ports
from tests.coordinator.client import (
    TIMEOUT,
    fetch,
    minted_cookie,
    wait_listening,
    wait_refused,
    wait_serving,
)
from tests.coordinator.conftest import Proxy, internal
from tests.coordinator.harness import App, TcpEcho, envoy_listeners, envoy_stat


@pytest.fixture
async def app() -> App:
    app = App("app-a")
    await app.start()
    yield app  # type: ignore[misc]
    await app.stop()


async def test_websocket_upgrade_through_the_proxy(proxy: Proxy, app: App) -> None:
    circuit = await proxy.create(app.port)
    cookie = minted_cookie(circuit)
    await wait_serving(circuit.url, cookie)

    async with (
        aiohttp.ClientSession(timeout=TIMEOUT) as http,
        http.ws_connect(circuit.url.replace("http://", "ws://") + "ws", headers=cookie) as ws,
    ):
        await ws.send_str("print(1)")
        answer = await ws.receive_str()
    assert answer == "app-a:print(1)"


async def test_websocket_without_a_cookie_is_refused(proxy: Proxy, app: App) -> None:
    circuit = await proxy.create(app.port)
    await wait_serving(circuit.url, minted_cookie(circuit))

    async with aiohttp.ClientSession(timeout=TIMEOUT) as http:
        with pytest.raises(aiohttp.WSServerHandshakeError) as refused:
            await http.ws_connect(circuit.url.replace("http://", "ws://") + "ws")
    assert refused.value.status == 401


async def tcp_exchange(port: int, data: bytes) -> bytes:
    """What comes back for `data`; b"" when the connection is refused, reset or closed."""
    try:
        reader, writer = await asyncio.open_connection("127.0.0.1", port)
    except OSError:
        return b""
    try:
        writer.write(data)
        await writer.drain()
        return await asyncio.wait_for(reader.read(100), 5)
    except OSError:
        return b""
    finally:
        writer.close()


async def test_raw_tcp_in_port_mode(proxy: Proxy) -> None:
    echo = TcpEcho()
    await echo.start()
    try:
        circuit = await proxy.create(echo.port, protocol=common.APP_PROTOCOL_TCP)
        assert circuit.url.startswith("tcp://127.0.0.1:")
        reply = b""
        for _ in range(500):
            reply = await tcp_exchange(circuit.port, b"hello")
            if reply:
                break
            # Until Envoy has the listener and a warm cluster, it refuses or closes.
            await asyncio.sleep(0.01)
        assert reply == b"echo:hello"

        # From an address outside allowed_client_ips, Envoy's RBAC closes the connection.
        fenced = await proxy.create(
            echo.port, protocol=common.APP_PROTOCOL_TCP, allowed=("192.0.2.0/24",)
        )
        denied, prefix = 0, f"circuit_{fenced.id.replace('-', '')}"
        for _ in range(500):
            assert await tcp_exchange(fenced.port, b"hello") == b""
            denied = await envoy_stat(proxy.envoy.admin_port, "rbac.denied", prefix)
            if denied:
                break
            await asyncio.sleep(0.01)
        assert denied >= 1
    finally:
        await echo.stop()


async def test_weighted_routes_and_route_updates(proxy: Proxy, app: App) -> None:
    other = App("app-b")
    await other.start()
    try:
        circuit = await proxy.create(app.port, public=True)
        await wait_serving(circuit.url)
        routes = [
            pb.Route(route_id="a", kernel_host="127.0.0.1", kernel_port=app.port, traffic_ratio=0),
            pb.Route(
                route_id="b", kernel_host="127.0.0.1", kernel_port=other.port, traffic_ratio=1
            ),
        ]
        updated = await proxy.circuits.UpdateRoutes(
            pb.UpdateRoutesRequest(circuit_id=circuit.id, routes=routes, session_ids=["s-2"]),
            metadata=internal(),
        )
        assert [r.route_id for r in updated.circuit.routes] == ["a", "b"]
        assert list(updated.circuit.session_ids) == ["s-2"]

        seen: Counter[str] = Counter()
        for _ in range(300):
            body = (await fetch(circuit.url)).body
            seen["b" if "app-b" in body else "a"] += 1
            if seen["b"] >= 20:
                break
            await asyncio.sleep(0.01)
        # Once the new cluster is in, only route b (ratio 1; a has 0) gets traffic.
        tail = [("app-b" in (await fetch(circuit.url)).body) for _ in range(20)]
        assert all(tail), seen
    finally:
        await other.stop()


async def test_a_dead_app_gets_a_clear_error_page(proxy: Proxy, app: App) -> None:
    circuit = await proxy.create(app.port)
    cookie = minted_cookie(circuit)
    await wait_serving(circuit.url, cookie)

    await app.stop()
    right_away = await fetch(circuit.url, cookie)
    # Later, once the health check has marked it, the answer is the same page.
    for _ in range(300):
        marked = await fetch(circuit.url, cookie)
        if "no_healthy_upstream" in marked.body:
            break
        await asyncio.sleep(0.02)

    for reply in (right_away, marked):
        assert reply.status == 503
        assert "the app is down" in reply.body
        assert reply.headers["content-type"].startswith("text/html")
    assert "no_healthy_upstream" in marked.body


async def test_deleting_a_circuit_removes_its_listener(proxy: Proxy, app: App) -> None:
    circuit = await proxy.create(app.port, public=True)
    await wait_serving(circuit.url)
    assert f"circuit_{circuit.id.replace('-', '')}" in await envoy_listeners(proxy.envoy.admin_port)

    await proxy.delete(circuit)
    await proxy.delete(circuit)  # idempotent

    await wait_refused(circuit.url)
    assert f"circuit_{circuit.id.replace('-', '')}" not in await envoy_listeners(
        proxy.envoy.admin_port
    )


async def test_deleting_a_circuit_closes_its_open_websockets(proxy: Proxy, app: App) -> None:
    circuit = await proxy.create(app.port, public=True)
    await wait_serving(circuit.url)
    async with (
        aiohttp.ClientSession(timeout=TIMEOUT) as http,
        http.ws_connect(circuit.url.replace("http://", "ws://") + "ws") as ws,
    ):
        await ws.send_str("before")
        assert await ws.receive_str() == "app-a:before"

        await proxy.delete(circuit)

        closing = await ws.receive(timeout=8)
    assert closing.type in (
        aiohttp.WSMsgType.CLOSE,
        aiohttp.WSMsgType.CLOSED,
        aiohttp.WSMsgType.ERROR,
    )


async def test_grpc_apps_get_http2_end_to_end(proxy: Proxy) -> None:
    server = grpc.aio.server()
    health_servicer = health.aio.HealthServicer()
    health_pb2_grpc.add_HealthServicer_to_server(health_servicer, server)
    port = server.add_insecure_port("127.0.0.1:0")
    await server.start()
    try:
        await health_servicer.set("", health_pb2.HealthCheckResponse.SERVING)
        circuit = await proxy.create(port, public=True, protocol=common.APP_PROTOCOL_GRPC)
        await wait_listening(circuit.port)
        async with grpc.aio.insecure_channel(f"127.0.0.1:{circuit.port}") as channel:
            stub = health_pb2_grpc.HealthStub(channel)
            for _ in range(500):
                try:
                    reply = await stub.Check(health_pb2.HealthCheckRequest(), timeout=5)
                    break
                except grpc.aio.AioRpcError as exc:
                    # The cluster may still be warming: Envoy answers UNAVAILABLE.
                    assert exc.code() == grpc.StatusCode.UNAVAILABLE, exc
                    await asyncio.sleep(0.01)
        assert reply.status == health_pb2.HealthCheckResponse.SERVING
    finally:
        await server.stop(0)


async def test_route_health_comes_from_envoys_health_checks(proxy: Proxy, app: App) -> None:
    (dead,) = free_ports(1)
    circuit = await proxy.create(app.port, dead, public=True)
    healths: list[int] = []
    for _ in range(500):
        got = await proxy.circuits.GetCircuit(
            pb.GetCircuitRequest(circuit_id=circuit.id), metadata=internal()
        )
        healths = [r.health for r in got.circuit.routes]
        if pb.ROUTE_HEALTH_UNSPECIFIED not in healths:
            break
        await asyncio.sleep(0.02)
    assert healths == [pb.ROUTE_HEALTH_HEALTHY, pb.ROUTE_HEALTH_UNHEALTHY]
