"""The real agent process core against the real manager: registration, events
driving a kernel to RUNNING and TERMINATED, calls through the client pool, and
shutdown. The container runtime (not under test) is the agent tests' host-process
fake."""

from __future__ import annotations

from typing import Any

from bai.agent.main import RunningAgent
from bai.api.agent.v1 import agent_pb2
from bai.api.common.v1 import session_pb2
from bai.common.slots import Slots
from tests.agent.core.fake_runtime import IMAGE, HostProcessRuntime
from tests.agent.core.helpers import create_request, eventually, kernel_config
from tests.manager.agents.fake_agent import agent_row, kernel_rows, place_session, session_row
from tests.manager.fixtures import ManagerHandle


async def status_of(manager: ManagerHandle, agent_id: str) -> str | None:
    try:
        return (await agent_row(manager, agent_id)).status
    except AssertionError:
        return None


async def test_a_real_agent_registers_runs_and_ends_a_kernel(
    manager: ManagerHandle, real_agent: tuple[RunningAgent, HostProcessRuntime]
) -> None:
    agent, _runtime = real_agent
    agent_id = agent.ctx.agent_id

    async def alive() -> bool:
        return await status_of(manager, agent_id) == "ALIVE"

    await eventually(alive, "the agent is ALIVE in the manager")
    row = await agent_row(manager, agent_id)
    assert Slots.from_wire(row.available_slots).get_amount("cpu") > 0
    assert f"{IMAGE}@x86_64" in row.images

    # Counted as 1 GiB by the manager but created with 256 MiB: the agent's
    # report is what stays counted, and what is released at the end.
    placed = await place_session(manager, agent_id, ["SCHEDULED"])
    (kernel_id,) = placed.kernel_ids
    config = kernel_config(slots={"cpu": "1", "mem": str(256 << 20)})
    config.kernel_id, config.session_id = str(kernel_id), str(placed.session_id)
    pool = manager.ctx.agent_pool
    reply: Any = await pool.call(agent_id, "CreateKernels", create_request(config))
    assert not reply.results[0].HasField("error"), reply

    async def kernel_status(wanted: str) -> bool:
        (kernel,) = await kernel_rows(manager, [kernel_id])
        return kernel.status == wanted

    await eventually(lambda: kernel_status("RUNNING"), "the kernel RUNNING via agent events")
    (kernel,) = await kernel_rows(manager, [kernel_id])
    assert kernel.container_id
    assert (await session_row(manager, placed.session_id)).status == "RUNNING"
    assert (await agent_row(manager, agent_id)).occupied_slots == {
        "cpu": "1",
        "mem": str(256 << 20),
    }

    destroy = agent_pb2.DestroyKernelRequest(
        kernel_id=str(kernel_id), reason=session_pb2.LIFECYCLE_REASON_USER_REQUESTED
    )
    assert (await pool.call(agent_id, "DestroyKernel", destroy)).found
    await eventually(lambda: kernel_status("TERMINATED"), "the kernel TERMINATED via events")
    assert not Slots.from_wire((await agent_row(manager, agent_id)).occupied_slots).nonzero()

    await agent.stop()

    async def terminated() -> bool:
        return await status_of(manager, agent_id) == "TERMINATED"

    await eventually(terminated, "a stopped agent is TERMINATED")
