"""A real agent process that dies or restarts under running sessions."""

from __future__ import annotations

import signal
from collections.abc import Awaitable, Callable
from typing import Any

import grpc
import pytest

from bai.api.common.v1 import execution_pb2
from bai.api.common.v1 import session_pb2 as common
from bai.client import AsyncClient, BaiError, execute
from tests.e2e.agent_process import AgentProcess, wait_alive
from tests.e2e.containers import kernel_containers, wait_no_container
from tests.e2e.own_manager import OwnManager
from tests.e2e.records import agent_row, occupied, session_row, wait_session
from tests.e2e.sdk import SLOTS, run_code, running_session, sdk, text
from tests.e2e.waits import bounded, eventually
from tests.manager.fixtures import ManagerHandle

# Agents killed and restarted, lost timeouts waited out: seconds each.
pytestmark = pytest.mark.slow

LOST_TIMEOUT = 3.0


async def agent_status(manager: ManagerHandle, agent_id: str) -> str | None:
    row = await agent_row(manager, agent_id)
    return None if row is None else row.status


async def test_a_killed_agent_is_lost_and_its_orphan_is_cleaned_up_on_return(
    manager: ManagerHandle,
    own_managers: Callable[..., Awaitable[OwnManager]],
    agent_factory: Callable[[str], Any],
) -> None:
    own = await own_managers(lost_timeout=LOST_TIMEOUT)
    async with agent_factory(own.address) as agent, sdk(manager, own.address) as client:
        session = await running_session(client, agent)
        (kernel,) = session.kernels

        agent.signal(signal.SIGKILL)
        await agent.wait_exit()

        async def lost() -> bool:
            return await agent_status(manager, agent.agent_id) == "LOST"

        await eventually(lost, "the silent agent becomes LOST")
        row = await wait_session(manager, session.id, {"TERMINATED", "ERROR"})
        assert row.status == "TERMINATED", row.status_info
        got = (await client.sessions.get_session(session_id=session.id)).session
        assert got.status_reason == common.LIFECYCLE_REASON_AGENT_LOST, got
        assert got.kernels[0].status_reason == common.LIFECYCLE_REASON_AGENT_LOST, got
        assert await occupied(manager, agent.agent_id) == {}
        # The container outlived its agent...
        assert kernel_containers(kernel.id, running_only=True), "the container died with the agent"

        # ...and the returning agent's report of it is answered with a destroy.
        agent.start()
        await wait_alive(manager, agent)
        await wait_no_container(kernel.id, running_only=True)
        assert await occupied(manager, agent.agent_id) == {}
        assert (await session_row(manager, session.id)).status == "TERMINATED"

        # And the agent serves new sessions.
        again = await running_session(client, agent)
        chunks, _, _ = await run_code(client, again.id, "print('back')")
        assert text(chunks) == "back\n"


@pytest.mark.parametrize("stop", [signal.SIGTERM, signal.SIGKILL], ids=["sigterm", "sigkill"])
async def test_an_agent_restart_keeps_its_sessions_running(
    manager: ManagerHandle, agent: AgentProcess, client: AsyncClient, stop: signal.Signals
) -> None:
    """Back within the lost timeout (the shared manager's 30 s), after a clean
    shutdown or a crash."""
    session = await running_session(client, agent)
    (kernel,) = session.kernels
    _, _, _ = await run_code(client, session.id, "x = 41")
    before = await occupied(manager, agent.agent_id)
    assert before == SLOTS
    containers_before = kernel_containers(kernel.id, running_only=True)
    assert containers_before

    old = await agent_row(manager, agent.agent_id)
    assert old is not None
    agent.signal(stop)
    assert await agent.wait_exit() == (0 if stop == signal.SIGTERM else -stop)
    agent.start()
    await wait_alive(manager, agent, old_boot=old.boot_id)

    # Re-adopted: the same container, the same interpreter state, the same slots.
    chunks, result, _ = await run_code(client, session.id, "print(x + 1)")
    assert text(chunks) == "42\n", (chunks, result)
    assert (await session_row(manager, session.id)).status == "RUNNING"
    assert kernel_containers(kernel.id, running_only=True) == containers_before
    assert await occupied(manager, agent.agent_id) == before

    await client.sessions.destroy_session(session_id=session.id)
    await wait_session(manager, session.id, {"TERMINATED"})
    assert await occupied(manager, agent.agent_id) == {}


async def test_sessions_of_an_agent_that_shut_down_and_never_returned_end(
    manager: ManagerHandle,
    own_managers: Callable[..., Awaitable[OwnManager]],
    agent_factory: Callable[[str], Any],
) -> None:
    own = await own_managers(lost_timeout=LOST_TIMEOUT)
    async with agent_factory(own.address) as agent, sdk(manager, own.address) as client:
        session = await running_session(client, agent)
        agent.signal(signal.SIGTERM)
        assert await agent.wait_exit() == 0
        await wait_session(manager, session.id, {"TERMINATED", "ERROR"}, limit=3 * LOST_TIMEOUT)
        assert await occupied(manager, agent.agent_id) == {}


async def test_a_session_destroyed_while_its_agent_is_down_ends(
    manager: ManagerHandle,
    own_managers: Callable[..., Awaitable[OwnManager]],
    agent_factory: Callable[[str], Any],
) -> None:
    own = await own_managers(lost_timeout=LOST_TIMEOUT)
    async with agent_factory(own.address) as agent, sdk(manager, own.address) as client:
        session = await running_session(client, agent)
        agent.signal(signal.SIGKILL)
        await agent.wait_exit()
        # The agent cannot be told; the session must not hang in TERMINATING.
        await client.sessions.destroy_session(session_id=session.id)
        await wait_session(manager, session.id, {"TERMINATED"}, limit=3 * LOST_TIMEOUT)
        assert await occupied(manager, agent.agent_id) == {}
        # The container is left to the agent's return (as in the test above).
        assert kernel_containers(session.kernels[0].id, running_only=True)


async def test_a_run_in_progress_ends_when_its_agent_dies(
    manager: ManagerHandle, agent: AgentProcess, client: AsyncClient
) -> None:
    session = await running_session(client, agent)
    responses: list[str] = []
    async with execute(client, session.id, "import time\ntime.sleep(600)") as run:
        async for response in run:
            responses.append(str(response.WhichOneof("payload")))
            break
        agent.signal(signal.SIGKILL)
        try:
            await bounded(run.wait(), "the run's stream ends after its agent died", 20.0)
        except BaiError as exc:
            assert exc.code == grpc.StatusCode.UNAVAILABLE, exc
        else:
            assert run.result is not None, "the stream ended without a result"
            assert run.result.status == execution_pb2.EXECUTION_STATUS_FAILED, run.result
    assert responses == ["started"]
