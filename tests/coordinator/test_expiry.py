"""Circuits with a ttl: served until they expire, then removed with their route, also when
they expired while no coordinator ran."""

from __future__ import annotations

import asyncio
import time
import uuid
from datetime import UTC, datetime, timedelta

import grpc
import pytest
from google.protobuf import duration_pb2

from bai.api.coordinator.v1 import coordinator_pb2 as pb
from bai.coordinator.expiry import expired_circuits, expiry_of
from bai.coordinator.main import start_coordinator
from bai.coordinator.records import Circuit
from bai.coordinator.xds.files import worker_directory
from tests.coordinator.client import wait_refused, wait_serving
from tests.coordinator.conftest import Proxy, internal
from tests.coordinator.harness import App, envoy_listeners
from tests.coordinator.test_contract import create_request, failure
from tests.rpc_errors import reason_of, violated_fields

T0 = datetime(2026, 11, 27, 8, 0, tzinfo=UTC)


def circuit(expires_at: datetime | None) -> Circuit:
    return Circuit(
        id=uuid.uuid4(),
        request_id="r",
        app="app",
        protocol="http",
        app_mode="interactive",
        frontend_mode="port",
        worker="a:1",
        expires_at=expires_at,
    )


def test_expired_means_the_deadline_is_reached() -> None:
    never, past, now, later = (circuit(e) for e in (None, T0 - timedelta(1), T0, T0 + timedelta(1)))
    assert expired_circuits([never, past, now, later], T0) == sorted([past.id, now.id], key=str)
    assert expired_circuits([never, later], T0 + timedelta(days=400)) == [later.id]
    assert expiry_of(T0, None) is None and expiry_of(T0, 0) is None
    assert expiry_of(T0, 1.5) == T0 + timedelta(seconds=1.5)


def ttl(seconds: float) -> duration_pb2.Duration:
    out = duration_pb2.Duration()
    out.FromTimedelta(timedelta(seconds=seconds))
    return out


async def listed_ids(proxy: Proxy) -> list[str]:
    found = await proxy.circuits.ListCircuits(pb.ListCircuitsRequest(), metadata=internal())
    return [c.id for c in found.circuits]


async def occupied(proxy: Proxy) -> int:
    found = await proxy.workers.ListWorkers(pb.ListWorkersRequest(), metadata=internal())
    (worker,) = [w for w in found.workers if w.authority == proxy.worker]
    return worker.occupied_slots


async def wait_unlisted(proxy: Proxy, circuit_id: str) -> None:
    deadline = time.monotonic() + 10
    while circuit_id in await listed_ids(proxy):
        assert time.monotonic() < deadline, f"circuit {circuit_id} is still listed"
        await asyncio.sleep(0.05)


async def test_a_circuit_serves_until_it_expires_then_is_removed(proxy: Proxy) -> None:
    app = App("short-lived")
    await app.start()
    try:
        request = create_request(
            open_to_public=True,
            ttl=ttl(1.5),
            routes=[pb.Route(route_id="k1", kernel_host="127.0.0.1", kernel_port=app.port)],
        )
        created = (await proxy.circuits.CreateCircuit(request, metadata=internal())).circuit
        lifetime = created.expires_at.ToDatetime() - created.created_at.ToDatetime()
        assert created.HasField("expires_at") and lifetime == timedelta(seconds=1.5)
        listener = f"circuit_{created.id.replace('-', '')}"
        slots_while_alive = await occupied(proxy)
        assert (await wait_serving(created.url)).status == 200
        assert listener in await envoy_listeners(proxy.envoy.admin_port)

        await wait_unlisted(proxy, created.id)

        assert datetime.now(UTC) >= created.expires_at.ToDatetime(tzinfo=UTC)
        err = await failure(
            proxy.circuits.GetCircuit(
                pb.GetCircuitRequest(circuit_id=created.id), metadata=internal()
            )
        )
        assert err.code() == grpc.StatusCode.NOT_FOUND
        await wait_refused(created.url)
        assert listener not in await envoy_listeners(proxy.envoy.admin_port)
        assert await occupied(proxy) == slots_while_alive - 1
    finally:
        await app.stop()


@pytest.mark.parametrize("seconds", [-1, 30 * 86400 + 1])
async def test_a_ttl_out_of_range_is_an_invalid_field(proxy: Proxy, seconds: float) -> None:
    request = create_request(ttl=ttl(seconds))
    err = await failure(proxy.circuits.CreateCircuit(request, metadata=internal()))
    assert err.code() == grpc.StatusCode.INVALID_ARGUMENT and reason_of(err) == "INVALID_FIELD"
    assert violated_fields(err) == ["ttl"]


async def test_without_a_ttl_a_circuit_has_no_expiry(proxy: Proxy) -> None:
    for request in (create_request(), create_request(ttl=ttl(0))):
        created = (await proxy.circuits.CreateCircuit(request, metadata=internal())).circuit
        assert not created.HasField("expires_at")
        assert created.id in await listed_ids(proxy)
    longest = create_request(ttl=ttl(30 * 86400))
    created = (await proxy.circuits.CreateCircuit(longest, metadata=internal())).circuit
    assert created.expires_at.ToDatetime() - created.created_at.ToDatetime() == timedelta(days=30)


async def test_circuits_that_expired_while_down_are_gone_at_start_up(proxy: Proxy) -> None:
    request = create_request(open_to_public=True, ttl=ttl(0.5))
    created = (await proxy.circuits.CreateCircuit(request, metadata=internal())).circuit
    await proxy.running.stop()
    # Let it expire while no coordinator runs.
    left = created.expires_at.ToDatetime(tzinfo=UTC) - datetime.now(UTC)
    await asyncio.sleep(max(left.total_seconds(), 0))
    # A sweep interval longer than this test: only start-up can remove the circuit.
    proxy.running = await start_coordinator(
        proxy.config.model_copy(update={"expiry_sweep_seconds": 60})
    )
    try:
        assert uuid.UUID(created.id) not in proxy.running.state.circuits
        assert created.id not in await listed_ids(proxy)
        files = worker_directory(proxy.config.xds.directory, proxy.worker)
        assert created.id.replace("-", "") not in (files / "lds.json").read_text()
    finally:
        await proxy.running.stop()
        proxy.running = await proxy.restart_only()
