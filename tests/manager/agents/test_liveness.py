"""Agents that stop heartbeating become LOST; their kernels end agent-lost and
their slots go back; a LOST agent that registers again is ALIVE."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import grpc
from sqlalchemy import update

from bai.api.manager.v1 import agent_registry_pb2 as reg
from bai.common.slots import Slots
from bai.manager.agents import liveness
from bai.manager.db.compute import AgentRow
from tests.manager.agents.fake_agent import (
    RegistryClient,
    agent_row,
    kernel_rows,
    place_session,
    registration,
    session_row,
)
from tests.manager.fixtures import ManagerHandle, unique
from tests.rpc_errors import reason_of

LOST_AFTER = timedelta(seconds=30)


async def silence(manager: ManagerHandle, agent_id: str, seconds: int) -> None:
    """Pretend the agent's last heartbeat was `seconds` ago."""
    async with manager.ctx.sessions() as db, db.begin():
        await db.execute(
            update(AgentRow)
            .where(AgentRow.id == agent_id)
            .values(last_heartbeat_at=datetime.now(UTC) - timedelta(seconds=seconds))
        )


async def test_a_silent_agent_is_lost_and_its_kernels_end(
    manager: ManagerHandle, channel: grpc.aio.Channel
) -> None:
    agent_id = unique("i")
    client = RegistryClient(channel)
    await client.register(registration(agent_id))
    placed = await place_session(manager, agent_id, ["RUNNING", "RUNNING"])
    ctx = manager.ctx

    await silence(manager, agent_id, 10)
    assert agent_id not in await liveness.sweep(
        ctx.sessions, ctx.redis, LOST_AFTER, datetime.now(UTC)
    )
    assert (await agent_row(manager, agent_id)).status == "ALIVE"

    await silence(manager, agent_id, 31)
    assert agent_id in await liveness.sweep(ctx.sessions, ctx.redis, LOST_AFTER, datetime.now(UTC))
    # A second sweep (or another replica's) does not flip it again.
    assert agent_id not in await liveness.sweep(
        ctx.sessions, ctx.redis, LOST_AFTER, datetime.now(UTC)
    )
    row = await agent_row(manager, agent_id)
    assert row.status == "LOST" and row.lost_at is not None
    assert not Slots.from_wire(row.occupied_slots).nonzero()
    for kernel in await kernel_rows(manager, placed.kernel_ids):
        assert (kernel.status, kernel.status_reason) == ("TERMINATED", "agent-lost")
    session = await session_row(manager, placed.session_id)
    assert session.status == "TERMINATED" and session.status_reason == "agent-lost"

    # The old stream is no longer trusted: its heartbeat is refused.
    await client.send(reg.ConnectRequest(heartbeat=reg.AgentHeartbeat()))
    assert reason_of(await client.failure()) == "AGENT_REJECTED"

    again = RegistryClient(channel)
    try:
        await again.register(registration(agent_id))
        row = await agent_row(manager, agent_id)
        assert row.status == "ALIVE" and row.lost_at is None
    finally:
        await again.close()


async def test_kernels_of_an_agent_already_lost_are_ended_by_the_next_sweep(
    manager: ManagerHandle, channel: grpc.aio.Channel
) -> None:
    agent_id = unique("i")
    client = RegistryClient(channel)
    await client.register(registration(agent_id))
    await client.close()
    placed = await place_session(manager, agent_id, ["RUNNING"])
    # As if a sweep died after flipping the agent but before ending its kernels.
    async with manager.ctx.sessions() as db, db.begin():
        await db.execute(update(AgentRow).where(AgentRow.id == agent_id).values(status="LOST"))
    ctx = manager.ctx
    await liveness.sweep(ctx.sessions, ctx.redis, LOST_AFTER, datetime.now(UTC))
    (kernel,) = await kernel_rows(manager, placed.kernel_ids)
    assert (kernel.status, kernel.status_reason) == ("TERMINATED", "agent-lost")


async def test_an_agent_that_only_sends_events_stays_alive(
    manager: ManagerHandle, channel: grpc.aio.Channel
) -> None:
    """Under load a heartbeat may wait behind many events: every event counts as
    a sign of life, however long it has been since the last heartbeat."""
    agent_id = unique("i")
    client = RegistryClient(channel)
    ctx = manager.ctx
    try:
        await client.register(registration(agent_id))
        placed = await place_session(manager, agent_id, ["PREPARING"])
        (kernel_id,) = placed.kernel_ids
        noise = reg.ExecutionEvent(kernel_id=str(kernel_id), run_id="r1")
        # Longer than the lost timeout without a heartbeat, events all along.
        for seq in range(1, 4):
            await silence(manager, agent_id, 31)
            assert await client.event(seq, execution_event=noise) == seq
            lost = await liveness.sweep(ctx.sessions, ctx.redis, LOST_AFTER, datetime.now(UTC))
            assert agent_id not in lost
        # A burst of events counts too.
        await silence(manager, agent_id, 31)
        for seq in range(4, 14):
            await client.send(reg.ConnectRequest(seq=seq, execution_event=noise))
        while await client.ack() < 13:
            pass
        assert agent_id not in await liveness.sweep(
            ctx.sessions, ctx.redis, LOST_AFTER, datetime.now(UTC)
        )
        assert (await agent_row(manager, agent_id)).status == "ALIVE"
        (kernel,) = await kernel_rows(manager, [kernel_id])
        assert kernel.status == "PREPARING"
    finally:
        await client.close()
