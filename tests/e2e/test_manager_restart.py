"""A manager restarted under sessions that wait for capacity and sessions whose
kernels are being created: none is lost, none is stuck, no container orphaned."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Any

import pytest

from bai.api.common.v1 import session_pb2 as common
from bai.client import AsyncClient
from tests.e2e.agent_process import MiB
from tests.e2e.containers import IMAGE, containers
from tests.e2e.own_manager import OwnManager
from tests.e2e.records import agent_row, kernel_rows, occupied, session_row, wait_session
from tests.e2e.sdk import sdk
from tests.e2e.waits import DEADLINE, eventually
from tests.manager.fixtures import ManagerHandle, unique

# A manager stopped and started under live sessions: seconds.
pytestmark = pytest.mark.slow

# Long enough to stop and start the manager while the kernel is CREATING: the
# runner runs the bootstrap script before it answers the agent.
SLOW_BOOT = "sleep 4"


async def enqueue(client: AsyncClient, group: str, cpu: str, **fields: Any) -> str:
    reply = await client.sessions.create_session(
        name=unique("e2e"),
        image=IMAGE,
        scaling_group=group,
        resource_slots={"cpu": cpu, "mem": str(256 * MiB)},
        enqueue_only=True,
        **fields,
    )
    return str(reply.session.id)


async def test_sessions_survive_a_manager_restart(
    manager: ManagerHandle,
    own_managers: Callable[..., Awaitable[OwnManager]],
    agent_factory: Callable[[str], Any],
) -> None:
    own = await own_managers()
    async with agent_factory(own.address) as agent, sdk(manager, own.address) as client:
        running = await enqueue(client, agent.group, "1")
        await wait_session(manager, running, {"RUNNING"})
        # Needs both cpus of the agent: waits while `running` holds one.
        waiting = await enqueue(client, agent.group, "2")
        creating = await enqueue(client, agent.group, "1", bootstrap_script=SLOW_BOOT)

        async def diagnosed() -> Any:
            got = (await client.sessions.get_session(session_id=waiting)).session
            return got.scheduling_diagnostics

        await eventually(diagnosed, "the waiting session gets scheduling diagnostics")
        await wait_session(manager, creating, {"CREATING"})

        await own.stop()
        assert (await session_row(manager, creating)).status == "CREATING"
        await own.start()

        async def alive() -> bool:
            row = await agent_row(manager, agent.agent_id)
            return row is not None and row.status == "ALIVE"

        await eventually(alive, "the agent registers with the restarted manager")
        await wait_session(manager, creating, {"RUNNING"})
        assert (await session_row(manager, running)).status == "RUNNING"
        got = (await client.sessions.get_session(session_id=waiting)).session
        assert got.status == common.SESSION_STATUS_PENDING
        assert got.scheduling_diagnostics, got

        # Capacity back: the waiting session runs.
        for session_id in (running, creating):
            await client.sessions.destroy_session(session_id=session_id)
        await wait_session(manager, waiting, {"RUNNING"})
        assert await occupied(manager, agent.agent_id) == {"cpu": "2", "mem": str(256 * MiB)}

        # Every container of the agent belongs to a live kernel.
        (live,) = await kernel_rows(manager, waiting)

        async def only_live() -> bool:
            running_ids = containers("ai.bai.agent-id", agent.agent_id, running_only=True)
            return len(running_ids) == 1 and (live.container_id or "").startswith(running_ids[0])

        await eventually(only_live, "only the live kernel's container runs", DEADLINE)
        await client.sessions.destroy_session(session_id=waiting)
        await wait_session(manager, waiting, {"TERMINATED"})
