"""The agent's registry stream against a fake manager: register, heartbeats, events
with acks, re-send after reconnect, resync, unknown kernels, shutdown."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest

from bai.agent.main import RunningAgent
from bai.api.common.v1 import session_pb2
from bai.api.manager.v1 import agent_registry_pb2 as reg
from tests.agent.core.fake_manager import FakeRegistry, serve
from tests.agent.core.fake_runtime import HostProcessRuntime
from tests.agent.core.helpers import (
    AGENT_ID,
    KS,
    create_request,
    eventually,
    kernel_config,
    launch,
    stub_for,
    wait_status,
)

LR = session_pb2.LifecycleReason
TOKEN = "registry-token"


@pytest.fixture
async def manager() -> AsyncIterator[FakeRegistry]:
    registry = FakeRegistry()
    server, port = await serve(registry)
    registry.port = port  # type: ignore[attr-defined]
    try:
        yield registry
    finally:
        await server.stop(0)


@pytest.fixture
async def connected(
    state_dir: Path, manager: FakeRegistry
) -> AsyncIterator[tuple[RunningAgent, HostProcessRuntime]]:
    agent, runtime = await launch(
        state_dir,
        manager_addr=f"127.0.0.1:{manager.port}",  # type: ignore[attr-defined]
        internal_token=TOKEN,
    )
    agent.registry.backoff_min = 0.05
    try:
        await eventually(lambda: agent.registry.registrations == 1, "the agent registers")
        yield agent, runtime
    finally:
        await agent.stop()
        await runtime.kill_all()


def kinds(messages: list[reg.ConnectRequest]) -> list[str | None]:
    return [m.WhichOneof("payload") for m in messages]


async def test_register_then_heartbeats(
    connected: tuple[RunningAgent, HostProcessRuntime], manager: FakeRegistry
) -> None:
    agent, _ = connected
    assert manager.metadata[0]["x-bai-internal-token"] == TOKEN
    register = manager.streams[0][0].register
    assert register.agent_id == AGENT_ID
    assert register.boot_id == agent.ctx.boot_id
    assert register.addr == f"127.0.0.1:{agent.grpc_port}"
    assert register.available_slots.slots["cpu"] == "4"
    assert {s.slot_name for s in register.slot_types} == {"cpu", "mem"}
    assert register.hardware.cpu_cores > 0
    assert register.images[0].image.canonical
    assert manager.streams[0][0].seq == 0
    assert agent.registry.scaling_group == "from-manager"
    assert agent.ctx.manager_connected
    await eventually(
        lambda: kinds(manager.streams[0]).count("heartbeat") >= 2, "heartbeats at the interval"
    )
    beat = next(m.heartbeat for m in manager.streams[0] if m.WhichOneof("payload") == "heartbeat")
    assert beat.available_slots.slots["cpu"] == "4"


async def test_events_are_acked_and_trimmed(
    connected: tuple[RunningAgent, HostProcessRuntime], manager: FakeRegistry
) -> None:
    agent, _ = connected
    channel, stub = stub_for(agent)
    async with channel:
        config = kernel_config()
        token = (("x-bai-internal-token", TOKEN),)
        await stub.CreateKernels(create_request(config), metadata=token)
        await wait_status(agent, config.kernel_id, KS.KERNEL_STATUS_RUNNING)
    await eventually(lambda: agent.ctx.outbox.unacked() == [], "acked events leave the outbox")
    seqs = [m.seq for m in manager.events()]
    assert seqs == list(range(1, len(seqs) + 1))
    started = [
        m.kernel_event
        for m in manager.events()
        if m.kernel_event.type == reg.KERNEL_EVENT_TYPE_STARTED
    ]
    assert started[0].kernel_id == config.kernel_id
    beat = [m.heartbeat for m in manager.streams[0] if m.WhichOneof("payload") == "heartbeat"][-1]
    await eventually(
        lambda: (
            config.kernel_id
            in [m.heartbeat for m in manager.streams[0] if m.WhichOneof("payload") == "heartbeat"][
                -1
            ].kernel_ids
        ),
        "heartbeats list the live kernel",
    )
    assert beat is not None


async def test_unacked_events_are_resent_after_reconnect(
    connected: tuple[RunningAgent, HostProcessRuntime], manager: FakeRegistry
) -> None:
    agent, _ = connected
    manager.ack_events = False
    for _ in range(3):
        agent.ctx.outbox.agent_error("test event")
    await eventually(lambda: len(manager.events(0)) == 3, "three events on the first stream")
    # The manager stored only the first before the stream broke.
    manager.stored_seq = 1
    manager.ack_events = True
    manager.drop()
    await eventually(lambda: agent.registry.registrations == 2, "the agent reconnects")
    await eventually(lambda: len(manager.events(1)) == 2, "the unstored events come again")
    assert [m.seq for m in manager.events(1)] == [2, 3]
    assert manager.streams[1][0].register.boot_id == agent.ctx.boot_id
    await eventually(lambda: agent.ctx.outbox.unacked() == [], "acks trim the outbox")


async def test_resync_is_answered_with_a_snapshot(
    connected: tuple[RunningAgent, HostProcessRuntime], manager: FakeRegistry
) -> None:
    agent, _ = connected
    manager.push(reg.ConnectResponse(resync=reg.ResyncCommand()))
    manager.push(reg.ConnectResponse(config=reg.AgentConfigUpdate(scaling_group="moved")))
    await eventually(lambda: "kernel_snapshot" in kinds(manager.streams[0]), "a snapshot")
    snapshot = next(m for m in manager.streams[0] if m.WhichOneof("payload") == "kernel_snapshot")
    assert snapshot.seq == 0
    assert snapshot.kernel_snapshot.available_slots.slots["cpu"] == "4"
    await eventually(lambda: agent.registry.scaling_group == "moved", "config applied")


async def test_unknown_kernels_are_destroyed_and_shutdown_is_said(
    state_dir: Path, manager: FakeRegistry
) -> None:
    agent, runtime = await launch(state_dir)
    try:
        channel, stub = stub_for(agent)
        async with channel:
            config = kernel_config()
            await stub.CreateKernels(create_request(config))
            await wait_status(agent, config.kernel_id, KS.KERNEL_STATUS_RUNNING)
        await agent.stop()
        manager.unknown_kernel_ids = [config.kernel_id]
        again, _ = await launch(
            state_dir,
            runtime=runtime,
            manager_addr=f"127.0.0.1:{manager.port}",  # type: ignore[attr-defined]
        )
        try:
            register = (await _first_register(manager)).register
            assert [k.kernel_id for k in register.kernels] == [config.kernel_id]
            await wait_status(again, config.kernel_id, KS.KERNEL_STATUS_TERMINATED)

            def terminated() -> list[reg.KernelEvent]:
                return [
                    m.kernel_event
                    for m in manager.events()
                    if m.kernel_event.type == reg.KERNEL_EVENT_TYPE_TERMINATED
                ]

            await eventually(terminated, "the manager hears of the destruction")
            assert terminated()[0].kernel_id == config.kernel_id
            assert terminated()[0].reason == LR.LIFECYCLE_REASON_NOT_FOUND_IN_MANAGER
        finally:
            await again.stop()
        last = manager.streams[-1][-1]
        assert last.WhichOneof("payload") == "shutdown"
        assert last.shutdown.kernels_left_running
    finally:
        await runtime.kill_all()


async def _first_register(manager: FakeRegistry) -> Any:
    await eventually(lambda: manager.streams, "a stream opens")
    return manager.streams[0][0]
