"""CircuitService and WorkerService as the proto comments specify them (errors included)."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime, timedelta

import grpc
import pytest
from google.protobuf import duration_pb2

from bai.api.coordinator.v1 import coordinator_pb2 as pb
from tests.coordinator.conftest import Proxy, internal
from tests.rpc_errors import reason_of, violated_fields


def create_request(**overrides: object) -> pb.CreateCircuitRequest:
    fields: dict[str, object] = dict(
        request_id=str(uuid.uuid4()),
        app="jupyter",
        user_id="alice",
        session_ids=["s-contract"],
        routes=[pb.Route(route_id="k1", kernel_host="127.0.0.1", kernel_port=9)],
    )
    fields.update(overrides)
    return pb.CreateCircuitRequest(**fields)  # type: ignore[arg-type]


async def failure(call: object) -> grpc.aio.AioRpcError:
    with pytest.raises(grpc.aio.AioRpcError) as caught:
        await call  # type: ignore[misc]
    return caught.value


async def test_create_is_idempotent_per_request_id(proxy: Proxy) -> None:
    request = create_request(envs={"A": "1"})
    first = await proxy.circuits.CreateCircuit(request, metadata=internal())
    again = await proxy.circuits.CreateCircuit(request, metadata=internal())
    assert again.circuit == first.circuit
    c = first.circuit
    assert c.worker == proxy.worker and c.frontend_mode == pb.FRONTEND_MODE_PORT
    assert c.url == f"http://127.0.0.1:{c.port}/" and c.envs == {"A": "1"}

    request.app = "vscode"
    err = await failure(proxy.circuits.CreateCircuit(request, metadata=internal()))
    assert err.code() == grpc.StatusCode.FAILED_PRECONDITION
    assert reason_of(err) == "REQUEST_ID_CONFLICT"


async def test_create_rejects_bad_fields(proxy: Proxy) -> None:
    bad = create_request(
        request_id="not-a-uuid",
        routes=[pb.Route(route_id="", kernel_host="", kernel_port=70000, traffic_ratio=-1)],
        allowed_client_ips=["nonsense"],
    )
    err = await failure(proxy.circuits.CreateCircuit(bad, metadata=internal()))
    assert err.code() == grpc.StatusCode.INVALID_ARGUMENT and reason_of(err) == "INVALID_FIELD"
    assert set(violated_fields(err)) >= {
        "request_id",
        "routes[0].route_id",
        "routes[0].kernel_host",
        "routes[0].kernel_port",
        "routes[0].traffic_ratio",
        "allowed_client_ips[0]",
    }
    err = await failure(
        proxy.circuits.CreateCircuit(create_request(routes=[]), metadata=internal())
    )
    assert violated_fields(err) == ["routes"]


async def test_no_worker_of_the_mode_is_no_capacity(proxy: Proxy) -> None:
    request = create_request(frontend_mode=pb.FRONTEND_MODE_WILDCARD)
    err = await failure(proxy.circuits.CreateCircuit(request, metadata=internal()))
    assert err.code() == grpc.StatusCode.RESOURCE_EXHAUSTED and reason_of(err) == "NO_CAPACITY"


async def test_internal_token_is_required(proxy: Proxy) -> None:
    err = await failure(proxy.circuits.ListCircuits(pb.ListCircuitsRequest()))
    assert err.code() == grpc.StatusCode.UNAUTHENTICATED and reason_of(err) == "CREDENTIALS_MISSING"
    wrong = [("x-bai-internal-token", "wrong")]
    err = await failure(proxy.workers.ListWorkers(pb.ListWorkersRequest(), metadata=wrong))
    assert reason_of(err) == "TOKEN_INVALID"


async def test_get_update_delete_and_tokens_of_missing_circuits(proxy: Proxy) -> None:
    missing = str(uuid.uuid4())
    for call in (
        proxy.circuits.GetCircuit(pb.GetCircuitRequest(circuit_id=missing), metadata=internal()),
        proxy.circuits.UpdateRoutes(
            pb.UpdateRoutesRequest(circuit_id=missing), metadata=internal()
        ),
        proxy.circuits.IssueAppToken(
            pb.IssueAppTokenRequest(circuit_id=missing, user_id="u"), metadata=internal()
        ),
    ):
        err = await failure(call)
        assert err.code() == grpc.StatusCode.NOT_FOUND and reason_of(err) == "NOT_FOUND"
    await proxy.circuits.DeleteCircuit(
        pb.DeleteCircuitRequest(circuit_id=missing), metadata=internal()
    )
    err = await failure(
        proxy.circuits.GetCircuit(pb.GetCircuitRequest(circuit_id="x"), metadata=internal())
    )
    assert violated_fields(err) == ["circuit_id"]


async def test_token_ttl_is_at_most_30_days(proxy: Proxy) -> None:
    circuit = (await proxy.circuits.CreateCircuit(create_request(), metadata=internal())).circuit
    month = duration_pb2.Duration(seconds=31 * 86400)
    err = await failure(
        proxy.circuits.IssueAppToken(
            pb.IssueAppTokenRequest(circuit_id=circuit.id, ttl=month), metadata=internal()
        )
    )
    assert violated_fields(err) == ["ttl"]
    hour = await proxy.circuits.IssueAppToken(
        pb.IssueAppTokenRequest(circuit_id=circuit.id), metadata=internal()
    )
    left = hour.expires_at.ToDatetime(UTC) - datetime.now(UTC)
    assert timedelta(minutes=55) < left <= timedelta(hours=1)


async def test_list_circuits_filters_and_pages(proxy: Proxy) -> None:
    session = f"s-{uuid.uuid4().hex[:6]}"
    made = [
        (
            await proxy.circuits.CreateCircuit(
                create_request(session_ids=[session]), metadata=internal()
            )
        ).circuit.id
        for _ in range(3)
    ]
    seen: list[str] = []
    token = ""
    while True:
        page = await proxy.circuits.ListCircuits(
            pb.ListCircuitsRequest(session_id=session, page_size=2, page_token=token),
            metadata=internal(),
        )
        seen += [c.id for c in page.circuits]
        token = page.next_page_token
        if not token:
            break
    assert seen == made
    # The last item of a page may go away before the next page is asked for.
    page = await proxy.circuits.ListCircuits(
        pb.ListCircuitsRequest(session_id=session, page_size=2), metadata=internal()
    )
    await proxy.circuits.DeleteCircuit(
        pb.DeleteCircuitRequest(circuit_id=made[1]), metadata=internal()
    )
    rest = await proxy.circuits.ListCircuits(
        pb.ListCircuitsRequest(session_id=session, page_size=2, page_token=page.next_page_token),
        metadata=internal(),
    )
    assert [c.id for c in rest.circuits] == [made[2]]
    first = await proxy.circuits.ListCircuits(
        pb.ListCircuitsRequest(session_id=session, page_size=1), metadata=internal()
    )
    err = await failure(
        proxy.circuits.ListCircuits(
            pb.ListCircuitsRequest(user_id="bob", page_token=first.next_page_token),
            metadata=internal(),
        )
    )
    assert reason_of(err) == "INVALID_PAGE_TOKEN"


async def test_worker_lifecycle(proxy: Proxy) -> None:
    authority = f"w-{uuid.uuid4().hex[:6]}:10205"
    register = pb.RegisterWorkerRequest(
        authority=authority,
        frontend_mode=pb.FRONTEND_MODE_WILDCARD,
        hostname="apps.test",
        wildcard_domain="apps.test",
        available_slots=5,
    )
    reply = await proxy.workers.RegisterWorker(register, metadata=internal())
    assert reply.worker.status == pb.WORKER_STATUS_ALIVE and reply.worker.available_slots == 5
    assert reply.heartbeat_interval.seconds == int(proxy.config.heartbeat_interval_seconds)

    # Silent for 3 intervals: LOST; a heartbeat makes it ALIVE again.
    later = datetime.now(UTC) + timedelta(seconds=4 * proxy.config.heartbeat_interval_seconds)
    assert authority in await proxy.running.state.sweep_lost(later)
    lost = await proxy.workers.ListWorkers(
        pb.ListWorkersRequest(statuses=[pb.WORKER_STATUS_LOST]), metadata=internal()
    )
    assert authority in [w.authority for w in lost.workers]
    beat = await proxy.workers.Heartbeat(
        pb.HeartbeatRequest(authority=authority), metadata=internal()
    )
    assert beat.status == pb.WORKER_STATUS_ALIVE

    await proxy.workers.DeregisterWorker(
        pb.DeregisterWorkerRequest(authority=authority), metadata=internal()
    )
    gone = await proxy.workers.ListWorkers(
        pb.ListWorkersRequest(statuses=[pb.WORKER_STATUS_TERMINATED]), metadata=internal()
    )
    assert [w.authority for w in gone.workers] == [authority]
    beat = await proxy.workers.Heartbeat(
        pb.HeartbeatRequest(authority=authority), metadata=internal()
    )
    assert beat.status == pb.WORKER_STATUS_TERMINATED  # it must register again

    err = await failure(
        proxy.workers.Heartbeat(pb.HeartbeatRequest(authority="nobody:1"), metadata=internal())
    )
    assert err.code() == grpc.StatusCode.NOT_FOUND


async def test_register_worker_checks_its_mode(proxy: Proxy) -> None:
    port_mode = pb.RegisterWorkerRequest(
        authority="w:1", frontend_mode=pb.FRONTEND_MODE_PORT, hostname="h"
    )
    err = await failure(proxy.workers.RegisterWorker(port_mode, metadata=internal()))
    assert violated_fields(err) == ["port_range"]
    wildcard = pb.RegisterWorkerRequest(
        authority="w:1", frontend_mode=pb.FRONTEND_MODE_WILDCARD, hostname="h", available_slots=1
    )
    err = await failure(proxy.workers.RegisterWorker(wildcard, metadata=internal()))
    assert violated_fields(err) == ["wildcard_domain"]
