"""Interrupting runs and restarting kernels in place, on a real agent."""

from __future__ import annotations

from bai.api.common.v1 import execution_pb2
from bai.api.common.v1 import session_pb2 as common
from bai.client import AsyncClient, execute
from tests.e2e.agent_process import AgentProcess, MiB
from tests.e2e.containers import IMAGE
from tests.e2e.records import occupied, wait_session
from tests.e2e.sdk import run_code, text
from tests.e2e.waits import DEADLINE, bounded
from tests.manager.fixtures import ManagerHandle, unique

SLOTS = {"cpu": "1", "mem": str(256 * MiB)}


async def running(client: AsyncClient, agent: AgentProcess) -> str:
    reply = await client.sessions.create_session(
        name=unique("e2e"),
        image=IMAGE,
        scaling_group=agent.group,
        resource_slots=SLOTS,
        enqueue_only=False,
        timeout=DEADLINE,
    )
    assert reply.session.status == common.SESSION_STATUS_RUNNING, reply.session
    return str(reply.session.id)


async def test_interrupting_a_run(
    manager: ManagerHandle, agent: AgentProcess, client: AsyncClient
) -> None:
    sid = await running(client, agent)
    code = "import time\nprint('sleeping', flush=True)\ntime.sleep(600)"

    # From inside the stream, then with InterruptSession from another call.
    for how in ("stream", "rpc"):
        async with execute(client, sid, code, timeout=DEADLINE) as run:
            async for response in run:
                if response.HasField("output"):
                    break
            if how == "stream":
                run.interrupt()
            else:
                await client.sessions.interrupt_session(session_id=sid)
            result = await bounded(run.wait(), f"the run ends after an interrupt ({how})")
        assert result is not None
        assert result.status == execution_pb2.EXECUTION_STATUS_INTERRUPTED, (how, result)

    # The kernel still serves runs.
    chunks, _, _ = await run_code(client, sid, "print('still here')")
    assert text(chunks) == "still here\n"


async def test_restarting_a_session_keeps_its_slots_and_clears_its_state(
    manager: ManagerHandle, agent: AgentProcess, client: AsyncClient
) -> None:
    sid = await running(client, agent)
    await run_code(client, sid, "x = 41")
    before = await occupied(manager, agent.agent_id)

    await client.sessions.restart_session(session_id=sid)
    await wait_session(manager, sid, {"RUNNING"})
    # A fresh interpreter: x is gone.
    chunks, result, _ = await run_code(client, sid, "print('x' in globals())")
    assert text(chunks) == "False\n", (chunks, result)
    assert await occupied(manager, agent.agent_id) == before
