"""Interrupting runs and restarting kernels in place, on a real agent."""

from __future__ import annotations

from bai.api.common.v1 import execution_pb2
from bai.client import AsyncClient, execute
from tests.e2e.agent_process import AgentProcess
from tests.e2e.records import occupied, wait_session
from tests.e2e.sdk import run_code, running_session, text
from tests.e2e.waits import DEADLINE, bounded
from tests.manager.fixtures import ManagerHandle


async def test_interrupting_a_run(
    manager: ManagerHandle, agent: AgentProcess, client: AsyncClient
) -> None:
    sid = str((await running_session(client, agent)).id)
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
    sid = str((await running_session(client, agent)).id)
    await run_code(client, sid, "x = 41")
    before = await occupied(manager, agent.agent_id)

    await client.sessions.restart_session(session_id=sid)
    await wait_session(manager, sid, {"RUNNING"})
    # A fresh interpreter: x is gone.
    chunks, result, _ = await run_code(client, sid, "print('x' in globals())")
    assert text(chunks) == "False\n", (chunks, result)
    assert await occupied(manager, agent.agent_id) == before
