"""Events queued on a registry stream are applied in bursts (one transaction
each), still once each and in order; a burst that cannot be applied falls
back to one event at a time."""

from __future__ import annotations

import logging
from datetime import UTC, datetime

import grpc

from bai.api.manager.v1 import agent_registry_pb2 as reg
from bai.common.slots import Slots
from bai.manager.agents import ingest
from bai.manager.agents.kernel_updates import KernelReport
from tests.manager.agents.fake_agent import (
    RegistryClient,
    agent_row,
    kernel_event,
    kernel_rows,
    place_session,
    registration,
    session_row,
)
from tests.manager.fixtures import ManagerHandle, unique


async def acks_until(client: RegistryClient, seq: int) -> list[int]:
    """Every ack the manager sends until it acks `seq`."""
    seen = [await client.ack()]
    while seen[-1] < seq:
        seen.append(await client.ack())
    return seen


async def test_a_burst_is_applied_once_in_order(
    manager: ManagerHandle, channel: grpc.aio.Channel
) -> None:
    agent_id = unique("i")
    client = RegistryClient(channel)
    ctx = manager.ctx
    await client.register(registration(agent_id))
    try:
        placed = await place_session(manager, agent_id, ["PREPARING", "PREPARING"])
        first, second = placed.kernel_ids
        burst: list[tuple[int, ingest.AgentEvent]] = [
            (1, ingest.KernelChanged(KernelReport(str(first), "CREATING"))),
            (2, ingest.KernelChanged(KernelReport(str(second), "CREATING"))),
            (3, ingest.KernelChanged(KernelReport(str(first), "RUNNING"))),
            (4, ingest.KernelChanged(KernelReport(str(second), "RUNNING"))),
            (5, ingest.Noted("execution", "noise", logging.DEBUG)),
            (6, ingest.KernelChanged(KernelReport(str(first), "TERMINATED", reason="user"))),
        ]
        now = datetime.now(UTC)
        boot_id = (await agent_row(manager, agent_id)).boot_id
        assert await ingest.apply_burst(ctx.sessions, ctx.redis, agent_id, boot_id, burst, now)
        # The same burst again, or one overlapping it, changes nothing.
        assert not await ingest.apply_burst(ctx.sessions, ctx.redis, agent_id, boot_id, burst, now)
        assert not await ingest.apply_burst(
            ctx.sessions, ctx.redis, agent_id, boot_id, burst[4:], now
        )
        one, two = await kernel_rows(manager, placed.kernel_ids)
        assert [h["status"] for h in one.status_history] == ["CREATING", "RUNNING", "TERMINATED"]
        assert [h["status"] for h in two.status_history] == ["CREATING", "RUNNING"]
        session = await session_row(manager, placed.session_id)
        assert session.status == "RUNNING_DEGRADED"
        agent = await agent_row(manager, agent_id)
        assert agent.last_acked_seq == 6
        # The ended kernel's slots went back once: one kernel's worth is left.
        assert Slots.from_wire(agent.occupied_slots) == Slots.from_wire(
            {"cpu": "1", "mem": "1073741824"}
        )
    finally:
        await client.close()


async def test_events_sent_at_once_are_applied_once_and_acked(
    manager: ManagerHandle, channel: grpc.aio.Channel
) -> None:
    agent_id = unique("i")
    client = RegistryClient(channel)
    await client.register(registration(agent_id))
    try:
        placed = [await place_session(manager, agent_id, ["PREPARING"]) for _ in range(20)]
        events = []
        for n, session in enumerate(placed):
            (kernel_id,) = session.kernel_ids
            for kind in (reg.KERNEL_EVENT_TYPE_CREATING, reg.KERNEL_EVENT_TYPE_STARTED):
                events.append(kernel_event(kernel_id, kind, message=f"session {n}"))
        # An unstorable event in the middle of the queue.
        poison = kernel_event(placed[0].kernel_ids[0], reg.KERNEL_EVENT_TYPE_CREATING)
        events.insert(13, reg.KernelEvent(kernel_id=poison.kernel_id, message="\x00"))
        stream = [reg.ConnectRequest(seq=n, kernel_event=e) for n, e in enumerate(events, 1)]
        # And a re-sent one.
        stream.insert(8, stream[3])
        for request in stream:
            await client.send(request)
        assert (await acks_until(client, len(events)))[-1] == len(events)
        assert (await agent_row(manager, agent_id)).last_acked_seq == len(events)
        kernels = await kernel_rows(manager, [p.kernel_ids[0] for p in placed])
        for kernel in kernels:
            assert [h["status"] for h in kernel.status_history] == ["CREATING", "RUNNING"]
        for session in placed:
            assert (await session_row(manager, session.session_id)).status == "RUNNING"
    finally:
        await client.close()
