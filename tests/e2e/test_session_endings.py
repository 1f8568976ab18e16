"""How sessions end on their own on a real agent: batch results and exit codes,
and a kernel that exceeds its memory limit."""

from __future__ import annotations

from typing import Any

from bai.api.common.v1 import execution_pb2
from bai.api.common.v1 import session_pb2 as common
from bai.client import AsyncClient
from tests.e2e.agent_process import AgentProcess, MiB
from tests.e2e.containers import IMAGE, wait_no_container
from tests.e2e.records import occupied, wait_session
from tests.e2e.sdk import run_code, text
from tests.e2e.waits import DEADLINE
from tests.manager.fixtures import ManagerHandle, unique

TERMINAL = {"TERMINATED", "ERROR", "CANCELLED"}
LR = common.LifecycleReason


async def create(
    client: AsyncClient, agent: AgentProcess, mem: int = 256, cpu: str = "1", **fields: Any
) -> Any:
    reply = await client.sessions.create_session(
        name=unique("e2e"),
        image=IMAGE,
        scaling_group=agent.group,
        resource_slots={"cpu": cpu, "mem": str(mem * MiB)},
        enqueue_only=True,
        **fields,
    )
    return reply.session


async def ended(manager: ManagerHandle, client: AsyncClient, session_id: str) -> Any:
    await wait_session(manager, session_id, TERMINAL)
    return (await client.sessions.get_session(session_id=session_id)).session


async def test_batch_sessions_end_with_their_command_s_result(
    manager: ManagerHandle, agent: AgentProcess, client: AsyncClient
) -> None:
    failing = await create(client, agent, type="batch", startup_command="exit 3")
    succeeding = await create(client, agent, type="batch", startup_command="echo hi")

    failed = await ended(manager, client, failing.id)
    assert failed.status == common.SESSION_STATUS_TERMINATED, failed
    assert failed.result == common.SESSION_RESULT_FAILURE
    assert failed.HasField("exit_code") and failed.exit_code == 3
    assert failed.kernels[0].exit_code == 3

    done = await ended(manager, client, succeeding.id)
    assert done.status == common.SESSION_STATUS_TERMINATED, done
    assert done.result == common.SESSION_RESULT_SUCCESS
    assert done.HasField("exit_code") and done.exit_code == 0

    assert await occupied(manager, agent.agent_id) == {}
    for kernel_id in (failed.kernels[0].id, done.kernels[0].id):
        await wait_no_container(kernel_id, running_only=True)


async def test_a_kernel_over_its_memory_limit_ends_out_of_memory(
    manager: ManagerHandle, agent: AgentProcess, client: AsyncClient
) -> None:
    session = await create(client, agent, mem=128)
    await wait_session(manager, session.id, {"RUNNING"})
    # Touch every page so that the memory is really used.
    hog = "block = bytearray(512 * 1024 * 1024)\nblock[::4096] = b'x' * (len(block) // 4096)"
    _, result, _ = await run_code(client, session.id, hog)
    # The runner died with the kernel: the run's fate is unknown.
    assert result is not None and result.status == execution_pb2.EXECUTION_STATUS_FAILED, result

    gone = await ended(manager, client, session.id)
    kernel = gone.kernels[0]
    assert kernel.status_reason == LR.LIFECYCLE_REASON_OUT_OF_MEMORY, kernel
    assert gone.status_reason == LR.LIFECYCLE_REASON_OUT_OF_MEMORY, gone
    # The platform killed the user's work: kernel and session end ERROR, with the reason.
    assert gone.status == common.SESSION_STATUS_ERROR, gone
    assert kernel.status == common.KERNEL_STATUS_ERROR, kernel
    assert await occupied(manager, agent.agent_id) == {}

    # The agent keeps serving.
    after = await create(client, agent)
    await wait_session(manager, after.id, {"RUNNING"})
    chunks, _, _ = await run_code(client, after.id, "print(6 * 7)")
    assert text(chunks) == "42\n"
    await client.sessions.destroy_session(session_id=after.id)
    await wait_session(manager, after.id, {"TERMINATED"}, DEADLINE)


async def test_a_session_destroyed_while_creating_leaves_no_container(
    manager: ManagerHandle, agent: AgentProcess, client: AsyncClient
) -> None:
    # The runner runs the bootstrap script before it answers: CREATING for a while.
    session = await create(client, agent, bootstrap_script="sleep 3")
    await wait_session(manager, session.id, {"CREATING"})
    await client.sessions.destroy_session(session_id=session.id)
    gone = await ended(manager, client, session.id)
    assert gone.status in (common.SESSION_STATUS_TERMINATED, common.SESSION_STATUS_CANCELLED)
    assert await occupied(manager, agent.agent_id) == {}
    await wait_no_container(gone.kernels[0].id, running_only=True)

    # The slots are really free: a session that needs all of them runs.
    big = await create(client, agent, mem=1024, cpu="2")
    await wait_session(manager, big.id, {"RUNNING"})
    await client.sessions.destroy_session(session_id=big.id)
    await wait_session(manager, big.id, {"TERMINATED"})
