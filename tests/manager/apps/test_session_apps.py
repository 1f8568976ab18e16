"""Session apps through the real manager: the agent starts the service, the
Coordinator (a fake written to CircuitService) gets the circuit, the caller
gets URL and token; stop, list, cleanup when the session ends, bad input and
other tenants."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator

import grpc
import pytest

from bai.api.manager.v1 import session_pb2 as pb
from bai.manager.apps import circuit_cleanup
from bai.manager.apps.coordinator import CoordinatorClient
from tests.manager.apps.fake_coordinator import TOKEN, FakeCoordinator, serving_coordinator
from tests.manager.callers import refused
from tests.manager.fixtures import ManagerHandle
from tests.manager.sessions.helpers import (
    GiB,
    agents,
    call,
    create,
    create_request,
    make_group,
    member,
    wait_status,
)
from tests.rpc_errors import reason_of, violated_fields

AGENT = {"cpu": "4", "mem": str(8 * GiB)}


@contextlib.asynccontextmanager
async def coordinator_at(manager: ManagerHandle, address: str, token: str) -> AsyncIterator[None]:
    """Point the running manager's app flow at `address` for one test."""
    apps = manager.ctx.apps
    before = apps.coordinator
    apps.coordinator = CoordinatorClient(address, token, call_timeout=5)
    try:
        yield
    finally:
        await apps.coordinator.close()
        apps.coordinator = before


@pytest.fixture
async def coordinator(manager: ManagerHandle) -> AsyncIterator[FakeCoordinator]:
    async with serving_coordinator() as (fake, address), coordinator_at(manager, address, TOKEN):
        yield fake


def start(session_id: str, service: str, **fields: object) -> pb.StartServiceRequest:
    return pb.StartServiceRequest(session_id=session_id, service=service, **fields)  # type: ignore[arg-type]


async def test_start_reuse_list_and_stop_an_app(
    manager: ManagerHandle, channel: grpc.aio.Channel, coordinator: FakeCoordinator
) -> None:
    group = await make_group(manager)
    user = await member(manager)
    async with agents(channel, group, AGENT) as (agent,):
        session = await create(channel, user, create_request(group, enqueue_only=False))
        kernel_id = session.kernels[0].id

        app = (await call(channel, user, "StartService", start(session.id, "ttyd"))).app
        assert app.is_running and app.service_port.name == "ttyd"
        assert app.url == coordinator.circuits[app.circuit_id].url
        assert app.token and app.token_expires_at.seconds > 0
        circuit = coordinator.circuits[app.circuit_id]
        assert circuit.user_id == str(user.user_id)
        assert list(circuit.session_ids) == [session.id]
        assert [(r.route_id, r.kernel_host, r.kernel_port) for r in circuit.routes] == [
            (kernel_id, "127.0.0.1", 30001)
        ]
        assert coordinator.tokens == [(app.circuit_id, str(user.user_id))]
        assert agent.state.services == {kernel_id: {"ttyd": 30001}}

        # Starting it again returns the same circuit with a fresh token.
        again = (await call(channel, user, "StartService", start(session.id, "ttyd"))).app
        assert again.circuit_id == app.circuit_id and again.token != app.token
        assert agent.state.service_calls == ["start ttyd"]

        listed = await call(
            channel, user, "ListServices", pb.ListServicesRequest(session_id=session.id)
        )
        state = {a.service_port.name: (a.is_running, a.url) for a in listed.apps}
        assert state == {"ttyd": (True, app.url), "jupyter": (False, "")}
        assert all(not a.token for a in listed.apps)

        stop = pb.ShutdownServiceRequest(session_id=session.id, service="ttyd")
        await call(channel, user, "ShutdownService", stop)
        assert coordinator.circuits == {}
        assert agent.state.services == {kernel_id: {}}
        await call(channel, user, "ShutdownService", stop)  # idempotent


async def test_an_open_to_public_app_gets_no_token(
    manager: ManagerHandle, channel: grpc.aio.Channel, coordinator: FakeCoordinator
) -> None:
    group = await make_group(manager)
    user = await member(manager)
    async with agents(channel, group, AGENT):
        session = await create(channel, user, create_request(group, enqueue_only=False))
        request = start(
            session.id, "jupyter", open_to_public=True, allowed_client_ips=["10.0.0.0/8"]
        )
        app = (await call(channel, user, "StartService", request)).app
        assert app.open_to_public and not app.token
        circuit = coordinator.circuits[app.circuit_id]
        assert circuit.open_to_public and list(circuit.allowed_client_ips) == ["10.0.0.0/8"]
        assert coordinator.tokens == []


async def test_bad_requests_and_other_tenants_are_refused(
    manager: ManagerHandle, channel: grpc.aio.Channel, coordinator: FakeCoordinator
) -> None:
    group = await make_group(manager)
    user = await member(manager)
    stranger = await member(manager)
    async with agents(channel, group, AGENT) as (agent,):
        session = await create(channel, user, create_request(group, enqueue_only=False))
        unknown = await refused(call(channel, user, "StartService", start(session.id, "vscode")))
        assert unknown.code() == grpc.StatusCode.NOT_FOUND
        bad = start(session.id, "", port=70000, allowed_client_ips=["nope"], envs={"BAI_X": "1"})
        error = await refused(call(channel, user, "StartService", bad))
        assert reason_of(error) == "INVALID_FIELD"
        assert set(violated_fields(error)) == {
            "service",
            "port",
            "allowed_client_ips[0]",
            "envs['BAI_X']",
        }
        theirs = await refused(call(channel, stranger, "StartService", start(session.id, "ttyd")))
        assert theirs.code() == grpc.StatusCode.NOT_FOUND
        listed = call(
            channel, stranger, "ListServices", pb.ListServicesRequest(session_id=session.id)
        )
        assert (await refused(listed)).code() == grpc.StatusCode.NOT_FOUND
        assert coordinator.circuits == {}

        agent.state.hold = True  # the next kernel stays PREPARING
        pending = await create(channel, user, create_request(group, name="pending-1"))
        error = await refused(call(channel, user, "StartService", start(pending.id, "ttyd")))
        assert reason_of(error) == "SESSION_NOT_READY"


async def test_without_a_coordinator_apps_are_unavailable(
    manager: ManagerHandle, channel: grpc.aio.Channel
) -> None:
    group = await make_group(manager)
    user = await member(manager)
    async with agents(channel, group, AGENT), coordinator_at(manager, "", ""):
        session = await create(channel, user, create_request(group, enqueue_only=False))
        error = await refused(call(channel, user, "StartService", start(session.id, "ttyd")))
        assert reason_of(error) == "DEPENDENCY_UNAVAILABLE"
        listed = await call(
            channel, user, "ListServices", pb.ListServicesRequest(session_id=session.id)
        )
        assert {a.service_port.name for a in listed.apps} == {"ttyd", "jupyter"}
        assert not any(a.is_running for a in listed.apps)


async def test_a_wrong_internal_token_is_reported_not_hidden(
    manager: ManagerHandle, channel: grpc.aio.Channel
) -> None:
    group = await make_group(manager)
    user = await member(manager)
    async with serving_coordinator() as (_, address), coordinator_at(manager, address, "wrong"):
        async with agents(channel, group, AGENT):
            session = await create(channel, user, create_request(group, enqueue_only=False))
            error = await refused(call(channel, user, "StartService", start(session.id, "ttyd")))
            assert error.code() == grpc.StatusCode.UNAUTHENTICATED


async def test_an_ending_session_loses_its_circuits(
    manager: ManagerHandle, channel: grpc.aio.Channel, coordinator: FakeCoordinator
) -> None:
    group = await make_group(manager)
    user = await member(manager)
    cleanup = asyncio.create_task(
        circuit_cleanup.run_forever(
            manager.ctx.sessions, manager.ctx.redis, manager.ctx.apps.coordinator
        )
    )
    try:
        async with agents(channel, group, AGENT):
            ending = await create(channel, user, create_request(group, enqueue_only=False))
            staying = await create(
                channel, user, create_request(group, name="staying", enqueue_only=False)
            )
            for session in (ending, staying):
                await call(channel, user, "StartService", start(session.id, "ttyd"))
            await call(
                channel, user, "DestroySession", pb.DestroySessionRequest(session_id=ending.id)
            )
            await wait_status(manager, ending.id, ["TERMINATED"])
            loop = asyncio.get_running_loop()
            deadline = loop.time() + 20
            while any(ending.id in c.session_ids for c in coordinator.circuits.values()):
                assert loop.time() < deadline, "the ended session's circuit is still there"
                await asyncio.sleep(0.05)
            assert [list(c.session_ids) for c in coordinator.circuits.values()] == [[staying.id]]
    finally:
        cleanup.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await cleanup


async def test_reconcile_removes_circuits_of_sessions_that_ended_unseen(
    manager: ManagerHandle, channel: grpc.aio.Channel, coordinator: FakeCoordinator
) -> None:
    group = await make_group(manager)
    user = await member(manager)
    async with agents(channel, group, AGENT):
        session = await create(channel, user, create_request(group, enqueue_only=False))
        await call(channel, user, "StartService", start(session.id, "ttyd"))
        await call(channel, user, "DestroySession", pb.DestroySessionRequest(session_id=session.id))
        await wait_status(manager, session.id, ["TERMINATED"])
        assert len(coordinator.circuits) == 1
        removed = await circuit_cleanup.reconcile(
            manager.ctx.sessions, manager.ctx.apps.coordinator
        )
        assert removed == 1 and coordinator.circuits == {}
