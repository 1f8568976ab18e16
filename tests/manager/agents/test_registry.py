"""The agents' registry stream against a real manager: registration, tokens,
stream order, heartbeats, event ingestion with seq dedupe, re-adoption."""

from __future__ import annotations

import uuid
from collections.abc import Iterator

import grpc
import pytest
from sqlalchemy import select

from bai.api.agent.v1 import agent_pb2
from bai.api.common.v1 import image_pb2, session_pb2, types_pb2
from bai.api.manager.v1 import agent_registry_pb2 as reg
from bai.common.slots import Slots
from bai.manager.db.compute import ImageRow
from bai.manager.db.policies import ScalingGroupRow
from tests.manager.agents.fake_agent import (
    IMAGE,
    RegistryClient,
    agent_row,
    kernel_event,
    kernel_rows,
    listed_kernel,
    place_session,
    registration,
    session_row,
)
from tests.manager.fixtures import ManagerHandle, unique
from tests.rpc_errors import reason_of, violated_fields


@pytest.fixture
def internal_token(manager: ManagerHandle) -> Iterator[str]:
    """The manager enforces an internal token for the duration of one test."""
    token = uuid.uuid4().hex
    manager.ctx.config.agent.internal_token = token
    try:
        yield token
    finally:
        manager.ctx.config.agent.internal_token = ""


async def test_register_creates_an_alive_agent_with_slots_and_images(
    manager: ManagerHandle, channel: grpc.aio.Channel
) -> None:
    agent_id = unique("i")
    client = RegistryClient(channel)
    try:
        accepted = await client.register(registration(agent_id))
        assert accepted.scaling_group == "default"
        assert accepted.last_acked_seq == 0
        assert accepted.manager_id == manager.ctx.agent_streams.manager_id
        assert accepted.heartbeat_interval.seconds == 20
        row = await agent_row(manager, agent_id)
        assert row.status == "ALIVE"
        assert row.available_slots == {"cpu": "4", "mem": "8589934592"}
        assert row.images == [f"{IMAGE}@x86_64"]
        assert row.addr == "127.0.0.1:6011" and row.last_heartbeat_at is not None
        async with manager.ctx.sessions() as db:
            image = await db.scalar(select(ImageRow).where(ImageRow.canonical == IMAGE))
        assert image is not None and image.registry_name == "cr.backend.ai"
        assert image.labels["ai.backend.service-ports"] == "jupyter:http:8080"
        assert await client.heartbeat() == 0
    finally:
        await client.close()


@pytest.mark.parametrize("sent, reason", [("", "CREDENTIALS_MISSING"), ("x", "TOKEN_INVALID")])
async def test_a_wrong_or_missing_token_is_unauthenticated(
    channel: grpc.aio.Channel, internal_token: str, sent: str, reason: str
) -> None:
    client = RegistryClient(channel, token=sent)
    await client.send(reg.ConnectRequest(register=registration(unique("i"))))
    failure = await client.failure()
    assert failure.code() == grpc.StatusCode.UNAUTHENTICATED
    assert reason_of(failure) == reason


async def test_the_right_token_is_accepted(channel: grpc.aio.Channel, internal_token: str) -> None:
    client = RegistryClient(channel, token=internal_token)
    try:
        accepted = await client.register(registration(unique("i")))
        assert accepted.scaling_group == "default"
    finally:
        await client.close()


async def test_register_must_come_first_and_only_once(channel: grpc.aio.Channel) -> None:
    client = RegistryClient(channel)
    await client.send(reg.ConnectRequest(heartbeat=reg.AgentHeartbeat()))
    failure = await client.failure()
    assert failure.code() == grpc.StatusCode.FAILED_PRECONDITION
    assert reason_of(failure) == "STREAM_OUT_OF_ORDER"

    again = RegistryClient(channel)
    await again.register(registration(unique("i")))
    await again.send(reg.ConnectRequest(register=registration(unique("i"))))
    failure = await again.failure()
    assert reason_of(failure) == "STREAM_OUT_OF_ORDER"


async def test_unknown_or_inactive_scaling_group_is_rejected(
    manager: ManagerHandle, channel: grpc.aio.Channel
) -> None:
    client = RegistryClient(channel)
    await client.send(
        reg.ConnectRequest(register=registration(unique("i"), scaling_group="no-such-group"))
    )
    failure = await client.failure()
    assert failure.code() == grpc.StatusCode.PERMISSION_DENIED
    assert reason_of(failure) == "AGENT_REJECTED"

    group = unique("sg")
    async with manager.ctx.sessions() as db, db.begin():
        db.add(ScalingGroupRow(name=group, is_active=False))
    inactive = RegistryClient(channel)
    await inactive.send(reg.ConnectRequest(register=registration(unique("i"), scaling_group=group)))
    assert reason_of(await inactive.failure()) == "AGENT_REJECTED"


async def test_bad_registration_fields_are_invalid(channel: grpc.aio.Channel) -> None:
    client = RegistryClient(channel)
    bad = registration("bad id!", addr="no-port")
    bad.region = "eu\x00"
    await client.send(reg.ConnectRequest(register=bad))
    failure = await client.failure()
    assert failure.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert set(violated_fields(failure)) == {
        "register.agent_id",
        "register.addr",
        "register.region",
    }


async def test_one_agent_id_from_two_addresses_is_rejected(channel: grpc.aio.Channel) -> None:
    agent_id = unique("i")
    first = RegistryClient(channel)
    try:
        await first.register(registration(agent_id, addr="127.0.0.1:6011"))
        second = RegistryClient(channel)
        await second.send(
            reg.ConnectRequest(register=registration(agent_id, addr="127.0.0.2:6011"))
        )
        failure = await second.failure()
        assert failure.code() == grpc.StatusCode.ALREADY_EXISTS
        assert reason_of(failure) == "AGENT_REJECTED"
    finally:
        await first.close()


async def test_a_reconnect_from_the_same_address_replaces_the_old_stream(
    manager: ManagerHandle, channel: grpc.aio.Channel
) -> None:
    agent_id = unique("i")
    old, new = RegistryClient(channel), RegistryClient(channel)
    try:
        await old.register(registration(agent_id))
        await new.register(registration(agent_id))
        assert await old.call.read() is grpc.aio.EOF
        assert await old.call.code() == grpc.StatusCode.OK
        assert await new.heartbeat() == 0
        assert manager.ctx.agent_streams.connected().count(agent_id) == 1
    finally:
        await old.close()
        await new.close()


async def test_kernel_events_are_applied_once_and_acked(
    manager: ManagerHandle, channel: grpc.aio.Channel
) -> None:
    agent_id = unique("i")
    client = RegistryClient(channel)
    try:
        await client.register(registration(agent_id))
        placed = await place_session(manager, agent_id, ["PREPARING"])
        (kernel_id,) = placed.kernel_ids
        creating = kernel_event(kernel_id, reg.KERNEL_EVENT_TYPE_CREATING)
        assert await client.event(1, kernel_event=creating) == 1
        started = kernel_event(
            kernel_id,
            reg.KERNEL_EVENT_TYPE_STARTED,
            runtime=agent_pb2.KernelRuntimeInfo(
                container_id="c0ffee",
                kernel_host="127.0.0.1",
                service_ports=[
                    session_pb2.ServicePort(
                        name="jupyter",
                        protocol=session_pb2.APP_PROTOCOL_HTTP,
                        container_ports=[8080],
                        host_ports=[30001],
                    )
                ],
                host_ports=[30001],
                allocated_slots=types_pb2.ResourceSlots(slots={"cpu": "1", "mem": "1073741824"}),
            ),
        )
        assert await client.event(2, kernel_event=started) == 2
        # The same event again (a re-send after a lost ack) is acked, not applied.
        assert await client.event(2, kernel_event=started) == 2
        (kernel,) = await kernel_rows(manager, [kernel_id])
        assert kernel.status == "RUNNING"
        assert kernel.container_id == "c0ffee"
        assert kernel.host_ports == [30001]
        assert kernel.service_ports[0]["name"] == "jupyter"
        assert [h["status"] for h in kernel.status_history] == ["CREATING", "RUNNING"]
        session = await session_row(manager, placed.session_id)
        assert session.status == "RUNNING"
        assert (await agent_row(manager, agent_id)).last_acked_seq == 2
    finally:
        await client.close()


async def test_events_about_kernels_placed_elsewhere_are_acked_and_ignored(
    manager: ManagerHandle, channel: grpc.aio.Channel
) -> None:
    agent_id, other_id = unique("i"), unique("i")
    client, other = RegistryClient(channel), RegistryClient(channel)
    try:
        await client.register(registration(agent_id))
        await other.register(registration(other_id, addr="127.0.0.1:6012"))
        placed = await place_session(manager, other_id, ["PREPARING"])
        (kernel_id,) = placed.kernel_ids
        ended = kernel_event(kernel_id, reg.KERNEL_EVENT_TYPE_TERMINATED)
        assert await client.event(1, kernel_event=ended) == 1
        bogus = reg.KernelEvent(kernel_id="not-a-uuid", type=reg.KERNEL_EVENT_TYPE_STARTED)
        assert await client.event(2, kernel_event=bogus) == 2
        (kernel,) = await kernel_rows(manager, [kernel_id])
        assert kernel.status == "PREPARING"
    finally:
        await client.close()
        await other.close()


async def test_an_unstorable_event_is_acked_and_the_next_one_applied(
    manager: ManagerHandle, channel: grpc.aio.Channel
) -> None:
    agent_id = unique("i")
    client = RegistryClient(channel)
    try:
        await client.register(registration(agent_id))
        placed = await place_session(manager, agent_id, ["PREPARING"])
        (kernel_id,) = placed.kernel_ids
        poison = kernel_event(kernel_id, reg.KERNEL_EVENT_TYPE_CREATING, message="bad\x00text")
        assert await client.event(1, kernel_event=poison) == 1
        creating = kernel_event(kernel_id, reg.KERNEL_EVENT_TYPE_CREATING)
        assert await client.event(2, kernel_event=creating) == 2
        (kernel,) = await kernel_rows(manager, [kernel_id])
        assert kernel.status == "CREATING" and kernel.status_info == ""
    finally:
        await client.close()


async def test_a_resent_event_after_reconnect_is_dropped(
    manager: ManagerHandle, channel: grpc.aio.Channel
) -> None:
    agent_id, boot_id = unique("i"), uuid.uuid4().hex
    client = RegistryClient(channel)
    await client.register(registration(agent_id, boot_id=boot_id))
    placed = await place_session(manager, agent_id, ["RUNNING"])
    (kernel_id,) = placed.kernel_ids
    ended = kernel_event(
        kernel_id,
        reg.KERNEL_EVENT_TYPE_TERMINATED,
        exit_code=3,
        reason=session_pb2.LIFECYCLE_REASON_SELF_TERMINATED,
    )
    assert await client.event(1, kernel_event=ended) == 1
    await client.close()

    again = RegistryClient(channel)
    try:
        listed = [listed_kernel(kernel_id, session_pb2.KERNEL_STATUS_TERMINATED)]
        accepted = await again.register(registration(agent_id, boot_id=boot_id, kernels=listed))
        assert accepted.last_acked_seq == 1
        assert list(accepted.unknown_kernel_ids) == [str(kernel_id)]
        assert await again.event(1, kernel_event=ended) == 1
        (kernel,) = await kernel_rows(manager, [kernel_id])
        assert kernel.status == "TERMINATED" and kernel.exit_code == 3
        assert [h["status"] for h in kernel.status_history] == ["TERMINATED"]
        assert not Slots.from_wire((await agent_row(manager, agent_id)).occupied_slots).nonzero()
    finally:
        await again.close()


async def test_reregistration_readopts_listed_kernels_and_ends_missing_ones(
    manager: ManagerHandle, channel: grpc.aio.Channel
) -> None:
    agent_id = unique("i")
    client = RegistryClient(channel)
    await client.register(registration(agent_id))
    await client.close()
    kept = await place_session(manager, agent_id, ["RUNNING"])
    gone = await place_session(manager, agent_id, ["RUNNING"])
    stranger = uuid.uuid4()

    again = RegistryClient(channel)
    try:
        listed = [listed_kernel(kept.kernel_ids[0]), listed_kernel(stranger)]
        accepted = await again.register(registration(agent_id, kernels=listed))
        assert list(accepted.unknown_kernel_ids) == [str(stranger)]
        row = await agent_row(manager, agent_id)
        # A new boot while kernels live: RESTARTING until the first heartbeat.
        assert row.status == "RESTARTING" and row.last_acked_seq == 0
        await again.heartbeat()
        assert (await agent_row(manager, agent_id)).status == "ALIVE"
        kept_kernel, gone_kernel = await kernel_rows(
            manager, [kept.kernel_ids[0], gone.kernel_ids[0]]
        )
        assert kept_kernel.status == "RUNNING"
        assert gone_kernel.status == "TERMINATED"
        assert gone_kernel.status_reason == "container-not-found"
        assert (await session_row(manager, gone.session_id)).status == "TERMINATED"
        assert (await agent_row(manager, agent_id)).occupied_slots == {
            "cpu": "1",
            "mem": "1073741824",
        }
    finally:
        await again.close()


async def test_batch_result_and_image_events(
    manager: ManagerHandle, channel: grpc.aio.Channel
) -> None:
    agent_id = unique("i")
    client = RegistryClient(channel)
    try:
        await client.register(registration(agent_id, images=()))
        placed = await place_session(manager, agent_id, ["RUNNING"])
        result = reg.BatchResult(
            session_id=str(placed.session_id),
            kernel_id=str(placed.kernel_ids[0]),
            result=session_pb2.SESSION_RESULT_SUCCESS,
            exit_code=0,
            reason=session_pb2.LIFECYCLE_REASON_TASK_FINISHED,
        )
        assert await client.event(1, batch_result=result) == 1
        session = await session_row(manager, placed.session_id)
        assert session.result == "success" and session.exit_code == 0

        pulled_name = unique("cr.backend.ai/test/pulled") + ":1"
        pulled = reg.ImageEvent(
            type=reg.IMAGE_EVENT_TYPE_PULL_FINISHED,
            image=image_pb2.ImageRef(
                canonical=pulled_name, architecture="x86_64", digest="sha256:aa"
            ),
        )
        assert await client.event(2, image_event=pulled) == 2
        assert (await agent_row(manager, agent_id)).images == [f"{pulled_name}@x86_64"]
        removed = reg.ImageEvent(type=reg.IMAGE_EVENT_TYPE_REMOVED, image=pulled.image)
        assert await client.event(3, image_event=removed) == 3
        assert (await agent_row(manager, agent_id)).images == []
        noted = reg.AgentErrorEvent(message="disk almost full")
        assert await client.event(4, agent_error=noted) == 4
    finally:
        await client.close()


async def test_shutdown_terminates_the_agent_but_not_its_kernels(
    manager: ManagerHandle, channel: grpc.aio.Channel
) -> None:
    agent_id = unique("i")
    client = RegistryClient(channel)
    await client.register(registration(agent_id))
    placed = await place_session(manager, agent_id, ["RUNNING"])
    await client.send(reg.ConnectRequest(shutdown=reg.AgentShutdown(kernels_left_running=True)))
    # Messages are applied in order: a heartbeat after shutdown is refused.
    await client.send(reg.ConnectRequest(heartbeat=reg.AgentHeartbeat()))
    assert reason_of(await client.failure()) == "AGENT_REJECTED"
    assert (await agent_row(manager, agent_id)).status == "TERMINATED"
    (kernel,) = await kernel_rows(manager, placed.kernel_ids)
    assert kernel.status == "RUNNING"


async def test_unreadable_slots_are_refused_or_ignored(
    manager: ManagerHandle, channel: grpc.aio.Channel
) -> None:
    agent_id = unique("i")
    client = RegistryClient(channel)
    await client.register(registration(agent_id))
    placed = await place_session(manager, agent_id, ["CREATING"])
    (kernel_id,) = placed.kernel_ids
    started = kernel_event(
        kernel_id,
        reg.KERNEL_EVENT_TYPE_STARTED,
        runtime=agent_pb2.KernelRuntimeInfo(
            container_id="c1", allocated_slots=types_pb2.ResourceSlots(slots={"cpu": "lots"})
        ),
    )
    assert await client.event(1, kernel_event=started) == 1
    (kernel,) = await kernel_rows(manager, [kernel_id])
    # The kernel runs; the scheduler's amounts stay.
    assert kernel.status == "RUNNING" and kernel.container_id == "c1"
    assert kernel.occupied_slots == {"cpu": "1", "mem": "1073741824"}

    bad = reg.AgentHeartbeat(available_slots=types_pb2.ResourceSlots(slots={"cpu": "-1"}))
    await client.send(reg.ConnectRequest(heartbeat=bad))
    failure = await client.failure()
    assert failure.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert violated_fields(failure) == ["heartbeat.available_slots[cpu]"]
    assert (await agent_row(manager, agent_id)).available_slots["cpu"] == "4"
