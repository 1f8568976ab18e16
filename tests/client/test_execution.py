"""SDK stream helpers: execute() over the bidi Execute stream, watch_events() across restarts."""

from __future__ import annotations

import asyncio
import queue
import threading
from collections.abc import Iterator

import pytest

from bai.api.common.v1 import execution_pb2
from bai.api.common.v1 import session_pb2 as common
from bai.api.manager.v1 import session_pb2
from bai.client import (
    AsyncClient,
    AsyncExecution,
    Client,
    Execution,
    KeypairCredentials,
    RetryPolicy,
    errors,
    execute,
    watch_events,
)
from tests.cli.fake_session_service import SessionServer
from tests.client.fakes import ACCESS_KEY, SECRET_KEY

CREDENTIALS = KeypairCredentials(ACCESS_KEY, SECRET_KEY)
FAST = RetryPolicy(max_attempts=100, initial_backoff=0.02, max_backoff=0.1, deadline=30.0)


@pytest.fixture
def server() -> Iterator[SessionServer]:
    with SessionServer() as running:
        yield running


def new_session(server: SessionServer, image: str = "python:3.12") -> session_pb2.Session:
    s = server.state.add(session_pb2.CreateSessionRequest(image=image))
    server.state.start(s)
    return s


def payloads(responses: list[session_pb2.ExecuteResponse]) -> list[str]:
    return [r.WhichOneof("payload") or "" for r in responses]


def test_execute_yields_responses_in_order_and_takes_stdin(server: SessionServer) -> None:
    s = new_session(server)
    seen = []
    with Client(server.address, CREDENTIALS) as client:
        run = execute(client, s.id, "out a; err b; ask name?; exit 4", environ={"X": "1"})
        assert isinstance(run, Execution)
        with run:
            for response in run:
                seen.append(response)
                if response.HasField("waiting_input"):
                    run.send_stdin("bob\n")
    assert payloads(seen) == ["started", "output", "output", "waiting_input", "output", "result"]
    outputs = [r.output for r in seen if r.HasField("output")]
    assert [(o.stream, o.data, o.seq) for o in outputs] == [
        (execution_pb2.OUTPUT_STREAM_STDOUT, b"a\n", 0),
        (execution_pb2.OUTPUT_STREAM_STDERR, b"b\n", 1),
        (execution_pb2.OUTPUT_STREAM_STDOUT, b"got bob\n", 2),
    ]
    assert run.run_id == "run-1" and run.kernel_id == s.kernels[0].id and run.exit_code == 4
    assert dict(server.state.inputs[0].start.environ) == {"X": "1"}


def test_interrupt_ends_the_run_with_its_result(server: SessionServer) -> None:
    s = new_session(server)
    with Client(server.address, CREDENTIALS) as client, execute(client, s.id, "wait") as run:
        assert next(run).HasField("started")
        run.interrupt()
        result = run.wait()
    assert result is not None and result.status == execution_pb2.EXECUTION_STATUS_INTERRUPTED
    assert run.exit_code is None


def test_execute_errors_are_bai_errors(server: SessionServer) -> None:
    s = new_session(server, image="stuck")
    with Client(server.address, CREDENTIALS) as client, execute(client, s.id, "out x") as run:
        with pytest.raises(errors.FailedPrecondition) as caught:
            run.wait()
    assert caught.value.reason == "SESSION_NOT_READY"
    with Client(server.address) as client, pytest.raises(ValueError, match="ExecutionMode"):
        execute(client, s.id, "x", mode="interactive")


async def test_async_execute(server: SessionServer) -> None:
    s = new_session(server)
    async with AsyncClient(server.address, CREDENTIALS) as client:
        run = execute(client, s.id, "ask first?; ask second?", mode="batch", exec_timeout=5)
        assert isinstance(run, AsyncExecution)
        async with run:
            outputs = []
            async for response in run:
                if response.HasField("waiting_input"):
                    if response.waiting_input.prompt == "first?":
                        run.send_stdin(b"one\n")
                    else:
                        run.close_stdin()
                elif response.HasField("output"):
                    outputs.append(response.output.data)
    assert outputs == [b"got one\n", b"got EOF\n"] and run.exit_code == 0
    spec = server.state.inputs[0].start
    assert spec.mode == execution_pb2.EXECUTION_MODE_BATCH and spec.timeout.ToSeconds() == 5


def test_watch_events_resumes_after_the_server_restarts(server: SessionServer) -> None:
    state = server.state
    s = state.add(session_pb2.CreateSessionRequest(image="stuck"))  # moves only when told
    got: queue.Queue[session_pb2.SessionEvent | None] = queue.Queue()

    def consume() -> None:
        with Client(server.address, CREDENTIALS) as client:
            for event in watch_events(client, s.id, cursor="c0", reconnect=FAST):
                got.put(event)
        got.put(None)

    consumer = threading.Thread(target=consume, daemon=True)
    consumer.start()
    assert got.get(timeout=10).cursor == "c1"  # type: ignore[union-attr]
    state.set_status(s, common.SESSION_STATUS_SCHEDULED)
    assert got.get(timeout=10).cursor == "c2"  # type: ignore[union-attr]
    server.stop()
    state.set_status(s, common.SESSION_STATUS_PREPARING)
    state.set_status(s, common.SESSION_STATUS_CREATING)
    server.start()
    resumed = [got.get(timeout=10), got.get(timeout=10)]
    assert [(e.cursor, e.session_status) for e in resumed if e] == [
        ("c3", common.SESSION_STATUS_PREPARING),
        ("c4", common.SESSION_STATUS_CREATING),
    ]
    state.set_status(s, common.SESSION_STATUS_CANCELLED)
    assert got.get(timeout=10).cursor == "c5"  # type: ignore[union-attr]
    assert got.get(timeout=10) is None  # the stream ended with the session
    consumer.join(timeout=10)
    cursors = [getattr(c.request, "cursor", "") for c in server.fake.calls_to("WatchEvents")]
    assert cursors[0] == "c0" and cursors[-1] == "c2"


def test_keepalives_are_consumed_but_their_cursor_is_kept(server: SessionServer) -> None:
    state = server.state
    s = state.add(session_pb2.CreateSessionRequest(image="stuck"))
    with state.cond:
        state.events.append(
            session_pb2.SessionEvent(
                cursor="c2", type=session_pb2.SESSION_EVENT_TYPE_KEEPALIVE, session_id=s.id
            )
        )
    state.set_status(s, common.SESSION_STATUS_CANCELLED)
    with Client(server.address, CREDENTIALS) as client:
        plain = [e.cursor for e in watch_events(client, s.id, cursor="c0")]
        every = [e.cursor for e in watch_events(client, s.id, cursor="c0", include_keepalive=True)]
    assert plain == ["c1", "c3"] and every == ["c1", "c2", "c3"]


def test_watch_events_gives_up_after_the_policy_and_on_other_errors(
    server: SessionServer,
) -> None:
    s = server.state.add(session_pb2.CreateSessionRequest(image="stuck"))
    with Client(server.address, CREDENTIALS) as client:
        with pytest.raises(errors.OutOfRange) as caught:
            next(watch_events(client, s.id, cursor="expired"))
        assert caught.value.reason == "CURSOR_EXPIRED"
        assert len(server.fake.calls_to("WatchEvents")) == 1
        server.stop()
        once = RetryPolicy(max_attempts=2, initial_backoff=0.01, max_backoff=0.01)
        with pytest.raises(errors.Unavailable):
            next(watch_events(client, s.id, reconnect=once))


async def test_async_watch_events_resumes_after_the_server_restarts(
    server: SessionServer,
) -> None:
    state = server.state
    s = state.add(session_pb2.CreateSessionRequest(image="stuck"))
    async with AsyncClient(server.address, CREDENTIALS) as client:
        events = watch_events(client, s.id, cursor="c0", reconnect=FAST)
        assert (await anext(events)).cursor == "c1"
        await asyncio.to_thread(server.stop)
        state.set_status(s, common.SESSION_STATUS_SCHEDULED)
        await asyncio.to_thread(server.start)
        assert (await anext(events)).cursor == "c2"
        state.set_status(s, common.SESSION_STATUS_CANCELLED)
        assert [e.cursor async for e in events] == ["c3"]
