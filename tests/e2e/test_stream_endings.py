"""Streams that follow a session end when it ends (real agent, real containers)."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

from bai.api.common.v1 import session_pb2 as common
from bai.client import AsyncClient
from tests.e2e.agent_process import AgentProcess, MiB
from tests.e2e.containers import IMAGE
from tests.e2e.records import wait_session
from tests.e2e.waits import bounded
from tests.manager.fixtures import ManagerHandle, unique

TERMINAL = {"TERMINATED", "ERROR", "CANCELLED"}


async def create(client: AsyncClient, agent: AgentProcess, **fields: Any) -> Any:
    reply = await client.sessions.create_session(
        name=unique("e2e"),
        image=IMAGE,
        scaling_group=agent.group,
        resource_slots={"cpu": "1", "mem": str(256 * MiB)},
        enqueue_only=True,
        **fields,
    )
    return reply.session


async def test_followed_logs_end_with_the_kernel(
    manager: ManagerHandle, agent: AgentProcess, client: AsyncClient
) -> None:
    session = await create(
        client, agent, type="batch", startup_command="echo first; sleep 2; echo second"
    )
    await wait_session(manager, session.id, {"RUNNING"} | TERMINAL)

    async def follow() -> bytes:
        stream = client.sessions.stream_logs(session_id=session.id, follow=True, timeout=60)
        return b"".join([r.entry.data async for r in stream])

    logged = await bounded(follow(), "the followed log ends when the kernel ends")
    assert b"first" in logged and b"second" in logged, logged
    await wait_session(manager, session.id, TERMINAL)


async def test_stats_end_with_the_session(
    manager: ManagerHandle, agent: AgentProcess, client: AsyncClient
) -> None:
    session = await create(client, agent, type="batch", startup_command="sleep 2")
    await wait_session(manager, session.id, {"RUNNING"})

    async def watch() -> int:
        stream = client.sessions.watch_stats(
            session_id=session.id, interval=timedelta(seconds=1), timeout=60
        )
        return len([r async for r in stream])

    samples = await bounded(watch(), "the stats stream ends when the session ends")
    assert samples >= 1
    await wait_session(manager, session.id, TERMINAL)


async def test_a_batch_session_past_its_timeout_fails(
    manager: ManagerHandle, agent: AgentProcess, client: AsyncClient
) -> None:
    session = await create(
        client, agent, type="batch", startup_command="sleep 60", batch_timeout=timedelta(seconds=1)
    )
    await wait_session(manager, session.id, TERMINAL)
    got = (await client.sessions.get_session(session_id=session.id)).session
    assert got.status == common.SESSION_STATUS_TERMINATED, got
    assert got.result == common.SESSION_RESULT_FAILURE, got
    assert got.status_reason == common.LIFECYCLE_REASON_TASK_TIMEOUT, got
