"""One interactive session on a real agent with Docker, driven through the SDK:
create, execute (state, stdout/stderr order, stdin, batch mode), logs, stats,
events, destroy, and nothing left behind."""

from __future__ import annotations

import asyncio
import uuid
from datetime import timedelta

from bai.api.common.v1 import execution_pb2
from bai.api.common.v1 import session_pb2 as common
from bai.api.manager.v1 import session_pb2 as pb
from bai.client import AsyncClient, watch_events
from bai.manager.sessions import events
from tests.e2e.agent_process import AgentProcess, MiB
from tests.e2e.containers import IMAGE, kernel_containers, wait_no_container
from tests.e2e.records import occupied, wait_session
from tests.e2e.sdk import run_code, text
from tests.e2e.waits import DEADLINE
from tests.manager.fixtures import ManagerHandle, unique

STDOUT, STDERR = execution_pb2.OUTPUT_STREAM_STDOUT, execution_pb2.OUTPUT_STREAM_STDERR
EV = pb.SessionEventType
LOG_MARKER = "e2e-container-log-marker"


async def first_cursor(manager: ManagerHandle) -> str:
    """A cursor to replay from. An empty feed's "0-0" is refused once events exist
    (see test_event_cursors.py), so the feed gets an unrelated event first."""
    cursor = await events.latest_cursor(manager.ctx.redis)
    if cursor != "0-0":
        return cursor
    scope = events.EventScope(str(uuid.uuid4()), "", "", "", "")
    event = pb.SessionEvent(type=EV.SESSION_EVENT_TYPE_KEEPALIVE)
    return await events.publish(manager.ctx.redis, event, scope)


async def test_interactive_session_through_the_sdk(
    manager: ManagerHandle, agent: AgentProcess, client: AsyncClient
) -> None:
    # Every event after this cursor is replayed to the watcher started below.
    before_create = await first_cursor(manager)
    seen: list[pb.SessionEvent] = []
    created = await client.sessions.create_session(
        name=unique("e2e"),
        image=IMAGE,
        scaling_group=agent.group,
        resource_slots={"cpu": "1", "mem": str(256 * MiB)},
        startup_command=f"echo {LOG_MARKER}",
        enqueue_only=False,
        timeout=DEADLINE,
    )
    session = created.session
    sid = session.id
    assert not created.wait_timed_out
    assert session.status == common.SESSION_STATUS_RUNNING, session
    assert list(session.agent_ids) == [agent.agent_id]
    (kernel,) = session.kernels
    assert kernel_containers(kernel.id, running_only=True), "no running container for the kernel"
    assert await occupied(manager, agent.agent_id) == {"cpu": "1", "mem": str(256 * MiB)}

    # Replay of the session's events from its first one: the history so far.
    async def watch(cursor: str = "") -> None:
        async for event in watch_events(client, sid, cursor=cursor):
            seen.append(event)

    watcher = asyncio.create_task(watch(cursor=before_create))

    # State is kept between runs.
    _, result, _ = await run_code(client, sid, "x = 41")
    assert result is not None and result.status == execution_pb2.EXECUTION_STATUS_FINISHED
    chunks, result, _ = await run_code(client, sid, "print(x + 1)")
    assert text(chunks, STDOUT) == "42\n"
    assert result is not None and result.exit_code == 0

    # stdout and stderr interleave in the order the program wrote them.
    code = (
        "import sys\n"
        "print('one', flush=True)\n"
        "print('two', file=sys.stderr, flush=True)\n"
        "print('three', flush=True)\n"
    )
    chunks, _, _ = await run_code(client, sid, code)
    ordered = [(s, line) for s, d in chunks for line in d.decode().splitlines() if line]
    assert ordered == [(STDOUT, "one"), (STDERR, "two"), (STDOUT, "three")]

    # stdin round trip.
    chunks, result, prompts = await run_code(
        client, sid, "name = input('who? ')\nprint('hello ' + name)", stdin="bai\n"
    )
    assert prompts == 1
    assert "hello bai" in text(chunks, STDOUT)

    # Batch mode: a shell command line with its exit code.
    chunks, result, _ = await run_code(client, sid, "echo batch-out; exit 7", mode="batch")
    assert "batch-out" in text(chunks, STDOUT)
    assert result is not None and result.exit_code == 7

    # Container logs (the runner's own output goes there).
    entries = [r.entry async for r in client.sessions.stream_logs(session_id=sid, timeout=DEADLINE)]
    assert LOG_MARKER in b"".join(e.data for e in entries).decode(errors="replace"), entries
    assert all(e.kernel_id == kernel.id for e in entries)

    # One stats sample with memory in use and cpu counters.
    stats = client.sessions.watch_stats(
        session_id=sid, interval=timedelta(seconds=1), timeout=DEADLINE
    )
    sample = None
    async for response in stats:
        if response.kernels and response.kernels[0].mem_used_bytes > 0:
            sample = response.kernels[0]
            break
    assert sample is not None, "no stats sample with memory in use"
    assert sample.kernel_id == kernel.id
    assert sample.mem_limit_bytes == 256 * MiB
    assert sample.cpu_used.ToTimedelta() > timedelta(0)

    destroyed = await client.sessions.destroy_session(session_id=sid)
    assert destroyed.session.status in (
        common.SESSION_STATUS_TERMINATING,
        common.SESSION_STATUS_TERMINATED,
    )
    await wait_session(manager, sid, {"TERMINATED"})
    # The event stream ends with the session's terminal event.
    await asyncio.wait_for(watcher, DEADLINE)
    types = [e.type for e in seen]
    assert types[0] == EV.SESSION_EVENT_TYPE_SESSION_ENQUEUED, types
    assert EV.SESSION_EVENT_TYPE_SESSION_STARTED in types
    assert types[-1] == EV.SESSION_EVENT_TYPE_SESSION_TERMINATED, types
    assert types.index(EV.SESSION_EVENT_TYPE_SESSION_STARTED) < len(types) - 1
    cursors = [e.cursor for e in seen]
    assert all(cursors) and len(set(cursors)) == len(cursors), cursors
    # Resuming after an event replays exactly what followed it.
    started = types.index(EV.SESSION_EVENT_TYPE_SESSION_STARTED)
    replayed = [e.cursor async for e in watch_events(client, sid, cursor=cursors[started])]
    assert replayed == cursors[started + 1 :]

    assert await occupied(manager, agent.agent_id) == {}
    got = await client.agents.get_agent(agent_id=agent.agent_id)
    assert not any(v not in ("0", "") for v in got.agent.occupied_slots.slots.values())
    await wait_no_container(kernel.id)
