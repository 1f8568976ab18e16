"""Bursts of several registry streams are applied together (group commit): one
transaction for all of them, each still once and in order; a batch that
cannot be applied whole is retried burst by burst."""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import Iterator
from contextlib import contextmanager

import grpc
from sqlalchemy import event

from bai.manager.agents import ingest
from bai.manager.agents.event_batcher import EventBatcher
from bai.manager.agents.kernel_updates import KernelReport
from tests.manager.agents.fake_agent import (
    RegistryClient,
    agent_row,
    kernel_rows,
    place_session,
    registration,
    session_row,
)
from tests.manager.fixtures import ManagerHandle, unique


@contextmanager
def counted_commits(manager: ManagerHandle) -> Iterator[list[int]]:
    """Counts the commits made on the manager's engine meanwhile (in [0])."""
    commits = [0]

    def count(_connection: object) -> None:
        commits[0] += 1

    engine = manager.ctx.engine.sync_engine
    event.listen(engine, "commit", count)
    try:
        yield commits
    finally:
        event.remove(engine, "commit", count)


def changed(kernel_id: uuid.UUID, status: str) -> ingest.KernelChanged:
    return ingest.KernelChanged(KernelReport(str(kernel_id), status))


async def registered_agents(
    manager: ManagerHandle, channel: grpc.aio.Channel, count: int
) -> list[tuple[str, str, RegistryClient]]:
    agents = []
    for _ in range(count):
        agent_id, client = unique("gc"), RegistryClient(channel)
        await client.register(registration(agent_id))
        agents.append((agent_id, (await agent_row(manager, agent_id)).boot_id, client))
    return agents


async def test_bursts_of_several_agents_share_one_transaction(
    manager: ManagerHandle, channel: grpc.aio.Channel
) -> None:
    agents = await registered_agents(manager, channel, 3)
    batcher = EventBatcher(manager.ctx.sessions, manager.ctx.redis)
    try:
        placed = [await place_session(manager, a, ["PREPARING"]) for a, _, _ in agents]
        bursts = [
            ingest.Burst(
                agent_id,
                boot_id,
                [
                    (1, changed(p.kernel_ids[0], "CREATING")),
                    (2, changed(p.kernel_ids[0], "RUNNING")),
                ],
            )
            for (agent_id, boot_id, _), p in zip(agents, placed, strict=True)
        ]
        with counted_commits(manager) as commits:
            outcomes = await asyncio.gather(*(batcher.apply(b) for b in bursts))
        assert outcomes == [set(), set(), set()]
        assert commits[0] == 1
        for (agent_id, _, _), p in zip(agents, placed, strict=True):
            (kernel,) = await kernel_rows(manager, p.kernel_ids)
            assert [h["status"] for h in kernel.status_history] == ["CREATING", "RUNNING"]
            assert (await session_row(manager, p.session_id)).status == "RUNNING"
            assert (await agent_row(manager, agent_id)).last_acked_seq == 2
        # Applied before: refused, alone or in company, and nothing changes.
        assert await batcher.apply(bursts[0]) is None
        again = await asyncio.gather(*(batcher.apply(b) for b in bursts))
        assert again == [None, None, None]
    finally:
        await batcher.close()
        for _, _, client in agents:
            await client.close()


async def test_a_replayed_burst_does_not_hold_back_the_others(
    manager: ManagerHandle, channel: grpc.aio.Channel
) -> None:
    (first, first_boot, c1), (second, second_boot, c2) = await registered_agents(
        manager, channel, 2
    )
    batcher = EventBatcher(manager.ctx.sessions, manager.ctx.redis)
    try:
        one = await place_session(manager, first, ["PREPARING"])
        two = await place_session(manager, second, ["PREPARING"])
        old = ingest.Burst(first, first_boot, [(1, changed(one.kernel_ids[0], "CREATING"))])
        assert await batcher.apply(old) == set()
        fresh = ingest.Burst(second, second_boot, [(1, changed(two.kernel_ids[0], "RUNNING"))])
        replayed, applied = await asyncio.gather(batcher.apply(old), batcher.apply(fresh))
        assert replayed is None and applied == set()
        assert (await session_row(manager, two.session_id)).status == "RUNNING"
        (kernel,) = await kernel_rows(manager, one.kernel_ids)
        assert [h["status"] for h in kernel.status_history] == ["CREATING"]
    finally:
        await batcher.close()
        await c1.close()
        await c2.close()


async def test_kernels_not_live_on_the_reporting_agent_are_named(
    manager: ManagerHandle, channel: grpc.aio.Channel
) -> None:
    """What the reaper destroys: kernels unknown, placed elsewhere, or ended."""
    (mine, boot, c1), (other, _, c2) = await registered_agents(manager, channel, 2)
    batcher = EventBatcher(manager.ctx.sessions, manager.ctx.redis)
    try:
        live = await place_session(manager, mine, ["PREPARING"])
        ended = await place_session(manager, mine, ["TERMINATED"])
        elsewhere = await place_session(manager, other, ["PREPARING"])
        unknown = uuid.uuid4()
        burst = ingest.Burst(
            mine,
            boot,
            [
                (1, changed(live.kernel_ids[0], "CREATING")),
                (2, changed(ended.kernel_ids[0], "RUNNING")),
                (3, changed(elsewhere.kernel_ids[0], "RUNNING")),
                (4, changed(unknown, "RUNNING")),
            ],
        )
        not_live = await batcher.apply(burst)
        assert not_live == {str(ended.kernel_ids[0]), str(elsewhere.kernel_ids[0]), str(unknown)}
        assert (await session_row(manager, elsewhere.session_id)).status == "PREPARING"
    finally:
        await batcher.close()
        await c1.close()
        await c2.close()
