"""50 concurrent creates beyond one real agent's capacity, through two manager
replicas (plus the shared one, all scheduling on the same database): the agent
is never given more than it has, and every session is accounted for."""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import Awaitable, Callable
from decimal import Decimal
from typing import Any

import pytest
from sqlalchemy import select

from bai.client import AsyncClient
from bai.common.slots import Slots
from bai.manager.db.compute import KernelRow, SessionRow
from bai.manager.sessions import lifecycle
from tests.e2e.agent_process import AGENT_CPU, AgentProcess, MiB
from tests.e2e.containers import IMAGE, containers
from tests.e2e.own_manager import OwnManager
from tests.e2e.records import agent_row, occupied
from tests.e2e.sdk import sdk
from tests.e2e.waits import DEADLINE, eventually
from tests.manager.fixtures import ManagerHandle, unique

# Fifty sessions through two replicas: seconds.
pytestmark = pytest.mark.slow

SESSIONS = 50
# Sessions that run (two at a time) before the rest is cancelled.
RUNS = 6
CAPACITY = int(AGENT_CPU)


class Sampler:
    """What the database and dockerd say the agent holds, sampled until stopped."""

    def __init__(self, manager: ManagerHandle, agent: AgentProcess) -> None:
        self.manager, self.agent = manager, agent
        self.max_occupied_cpu = Decimal(0)
        self.max_placed_kernels = 0
        self.max_containers = 0
        self.samples = 0
        self._stop = asyncio.Event()

    async def placed_kernels(self) -> int:
        placed = lifecycle.SESSION_ALLOCATED
        async with self.manager.ctx.sessions() as db:
            rows = await db.execute(
                select(KernelRow.id).where(
                    KernelRow.agent_id == self.agent.agent_id, KernelRow.status.in_(placed)
                )
            )
            return len(list(rows.scalars()))

    async def run(self) -> None:
        while not self._stop.is_set():
            row = await agent_row(self.manager, self.agent.agent_id)
            assert row is not None
            cpu = Slots.from_wire(row.occupied_slots).get_amount("cpu")
            self.max_occupied_cpu = max(self.max_occupied_cpu, cpu)
            self.max_placed_kernels = max(self.max_placed_kernels, await self.placed_kernels())
            running = await asyncio.to_thread(
                containers, "ai.bai.agent-id", self.agent.agent_id, running_only=True
            )
            self.max_containers = max(self.max_containers, len(running))
            self.samples += 1
            await asyncio.sleep(0.02)

    def stop(self) -> None:
        self._stop.set()


async def statuses(manager: ManagerHandle, ids: list[str]) -> dict[str, str]:
    async with manager.ctx.sessions() as db:
        rows = await db.execute(
            select(SessionRow.id, SessionRow.status).where(
                SessionRow.id.in_([uuid.UUID(i) for i in ids])
            )
        )
        return {str(r.id): r.status for r in rows}


async def test_concurrent_creates_never_overfill_the_agent(
    manager: ManagerHandle,
    own_managers: Callable[..., Awaitable[OwnManager]],
    agent_factory: Callable[[str], Any],
) -> None:
    first, second = await own_managers(), await own_managers()
    async with (
        agent_factory(first.address) as agent,
        sdk(manager, first.address) as one,
        sdk(manager, second.address) as two,
    ):
        sampler = Sampler(manager, agent)
        sampling = asyncio.create_task(sampler.run())

        async def create(client: AsyncClient) -> str:
            reply = await client.sessions.create_session(
                name=unique("e2e"),
                image=IMAGE,
                scaling_group=agent.group,
                resource_slots={"cpu": "1", "mem": str(256 * MiB)},
                enqueue_only=True,
            )
            return str(reply.session.id)

        ids = list(await asyncio.gather(*(create((one, two)[i % 2]) for i in range(SESSIONS))))
        assert len(set(ids)) == SESSIONS

        # Let sessions run through the agent, two at a time.
        finished: set[str] = set()
        while len(finished) < RUNS:

            async def running() -> list[str]:
                now = await statuses(manager, ids)
                return [i for i, s in now.items() if s == "RUNNING"]

            for session_id in await eventually(running, "a session runs"):
                await (one, two)[len(finished) % 2].sessions.destroy_session(session_id=session_id)
                finished.add(session_id)

        waiting = [i for i in ids if i not in finished]
        await asyncio.gather(
            *(
                (one, two)[n % 2].sessions.destroy_session(session_id=session_id)
                for n, session_id in enumerate(waiting)
            )
        )

        async def all_ended() -> bool:
            now = await statuses(manager, ids)
            return all(s in lifecycle.SESSION_TERMINAL for s in now.values())

        await eventually(all_ended, "every session ends", DEADLINE)
        sampler.stop()
        await sampling

        assert sampler.samples > 10
        assert sampler.max_occupied_cpu <= CAPACITY, sampler.max_occupied_cpu
        assert sampler.max_placed_kernels <= CAPACITY, sampler.max_placed_kernels
        assert sampler.max_containers <= CAPACITY, sampler.max_containers
        ended = await statuses(manager, ids)
        assert {ended[i] for i in finished} == {"TERMINATED"}
        rest = {s for i, s in ended.items() if i not in finished}
        # Destroyed while waiting (CANCELLED), or caught on the way (TERMINATED); none failed.
        assert rest <= {"CANCELLED", "TERMINATED"}, rest
        assert await occupied(manager, agent.agent_id) == {}
        # Leftover containers are not checked: a destroy that races a dispatch can leave
        # one running (test_orphan_kernels.py).
