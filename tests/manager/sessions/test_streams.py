"""Streaming RPCs: Execute relayed to the agent, WatchStats, WatchEvents with cursors."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from datetime import timedelta
from typing import Any

import grpc
import pytest
from google.protobuf.duration_pb2 import Duration

from bai.api.common.v1 import execution_pb2
from bai.api.common.v1 import session_pb2 as common
from bai.api.manager.v1 import session_pb2 as pb
from bai.api.manager.v1 import session_pb2_grpc as pb_grpc
from bai.manager.api import session_streams
from bai.manager.sessions import events
from tests.manager.callers import Caller
from tests.manager.fixtures import ManagerHandle
from tests.manager.sessions.helpers import (
    GiB,
    agents,
    call,
    create,
    create_request,
    make_group,
    member,
)
from tests.rpc_errors import reason_of

AGENT = {"cpu": "4", "mem": str(8 * GiB)}
SERVICE = "/bai.api.manager.v1.SessionService/"


def _stub(channel: grpc.aio.Channel) -> pb_grpc.SessionServiceStub:
    return pb_grpc.SessionServiceStub(channel)


async def _execute(
    channel: grpc.aio.Channel, who: Caller, requests: list[pb.ExecuteRequest]
) -> list[pb.ExecuteResponse]:
    queue: asyncio.Queue[pb.ExecuteRequest | None] = asyncio.Queue()
    for request in requests:
        queue.put_nowait(request)

    async def outgoing() -> AsyncIterator[pb.ExecuteRequest]:
        while (item := await queue.get()) is not None:
            yield item

    stream: Any = _stub(channel).Execute(outgoing(), metadata=who.metadata(SERVICE + "Execute"))
    replies = []
    async for reply in stream:
        replies.append(reply)
        if reply.WhichOneof("payload") == "waiting_input":
            data = execution_pb2.ExecutionInput(data=b"bai", eof=True)
            queue.put_nowait(pb.ExecuteRequest(stdin=data))
    queue.put_nowait(None)
    return replies


def _start(session_id: str, code: str) -> pb.ExecuteRequest:
    spec = execution_pb2.ExecutionSpec(mode=execution_pb2.EXECUTION_MODE_QUERY, code=code)
    return pb.ExecuteRequest(session_id=session_id, start=spec)


async def test_execute_is_relayed_to_the_main_kernel(
    manager: ManagerHandle, channel: grpc.aio.Channel
) -> None:
    group = await make_group(manager)
    idle_group = await make_group(manager)
    user = await member(manager)
    monitor = await member(manager, "monitor")
    async with agents(channel, group, AGENT):
        pending = await create(channel, user, create_request(idle_group))
        with pytest.raises(grpc.aio.AioRpcError) as info:
            await _execute(channel, user, [_start(pending.id, "print(1)")])
        assert reason_of(info.value) == "SESSION_NOT_READY"
        session = await create(channel, user, create_request(group, enqueue_only=False))
        replies = await _execute(channel, user, [_start(session.id, "print(1)")])
        kinds = [r.WhichOneof("payload") for r in replies]
        assert kinds == ["started", "output", "result"]
        assert replies[0].started.kernel_id == session.kernels[0].id
        assert replies[1].output.data == b"print(1)"
        assert replies[2].result.status == execution_pb2.EXECUTION_STATUS_FINISHED

        replies = await _execute(channel, user, [_start(session.id, "input")])
        assert [r.WhichOneof("payload") for r in replies] == [
            "started",
            "waiting_input",
            "output",
            "result",
        ]
        assert replies[2].output.data == b"hello bai"

        out_of_order = pb.ExecuteRequest(
            session_id=session.id, stdin=execution_pb2.ExecutionInput(data=b"x")
        )
        with pytest.raises(grpc.aio.AioRpcError) as info:
            await _execute(channel, user, [out_of_order])
        assert reason_of(info.value) == "STREAM_OUT_OF_ORDER"
        with pytest.raises(grpc.aio.AioRpcError) as info:
            await _execute(channel, monitor, [_start(session.id, "print(1)")])
        assert reason_of(info.value) == "READ_ONLY_ROLE"


async def test_watch_stats_sends_only_the_sessions_kernels(
    manager: ManagerHandle, channel: grpc.aio.Channel
) -> None:
    group = await make_group(manager)
    user = await member(manager)
    async with agents(channel, group, AGENT):
        session = await create(channel, user, create_request(group, enqueue_only=False))
        stream: Any = _stub(channel).WatchStats(
            pb.WatchStatsRequest(session_id=session.id, interval=Duration(seconds=1)),
            metadata=user.metadata(SERVICE + "WatchStats"),
        )
        sample = await stream.read()
        stream.cancel()
        assert [k.kernel_id for k in sample.kernels] == [session.kernels[0].id]
        too_fast: Any = _stub(channel).WatchStats(
            pb.WatchStatsRequest(session_id=session.id, interval=Duration(nanos=10)),
            metadata=user.metadata(SERVICE + "WatchStats"),
        )
        with pytest.raises(grpc.aio.AioRpcError) as info:
            await too_fast.read()
        assert reason_of(info.value) == "INVALID_FIELD"


async def test_stream_logs_relays_the_main_kernels_log(
    manager: ManagerHandle, channel: grpc.aio.Channel
) -> None:
    group = await make_group(manager)
    user = await member(manager)
    stranger = await member(manager)
    async with agents(channel, group, AGENT):
        session = await create(channel, user, create_request(group, enqueue_only=False))

        async def logs(who: Caller, request: pb.StreamLogsRequest) -> list[bytes]:
            stream: Any = _stub(channel).StreamLogs(
                request, metadata=who.metadata(SERVICE + "StreamLogs")
            )
            return [reply.entry.data async for reply in stream]

        assert await logs(user, pb.StreamLogsRequest(session_id=session.id)) == [
            b"booting",
            b"ready",
            b"serving",
        ]
        assert await logs(user, pb.StreamLogsRequest(session_id=session.id, tail=1)) == [b"serving"]
        with pytest.raises(grpc.aio.AioRpcError) as info:
            await logs(stranger, pb.StreamLogsRequest(session_id=session.id))
        assert info.value.code() == grpc.StatusCode.NOT_FOUND


async def _events(
    channel: grpc.aio.Channel, who: Caller, request: pb.WatchEventsRequest
) -> list[pb.SessionEvent]:
    """All events until the server ends the stream (it does after a terminal event)."""
    stream: Any = _stub(channel).WatchEvents(
        request, metadata=who.metadata(SERVICE + "WatchEvents")
    )
    return [reply.event async for reply in stream]


async def test_watch_events_resumes_from_a_cursor_and_ends_with_the_session(
    manager: ManagerHandle, channel: grpc.aio.Channel
) -> None:
    group = await make_group(manager)
    user = await member(manager)
    stranger = await member(manager)
    start = await events.latest_cursor(manager.ctx.redis)
    session = await create(channel, user, create_request(group))
    await call(channel, user, "DestroySession", pb.DestroySessionRequest(session_id=session.id))
    # Ended, no cursor: nothing to wait for.
    assert await _events(channel, user, pb.WatchEventsRequest(session_id=session.id)) == []
    replay = await _events(
        channel, user, pb.WatchEventsRequest(session_id=session.id, cursor=start)
    )
    types = [e.type for e in replay]
    assert types[0] == pb.SESSION_EVENT_TYPE_SESSION_ENQUEUED
    assert types[-1] == pb.SESSION_EVENT_TYPE_SESSION_CANCELLED
    assert pb.SESSION_EVENT_TYPE_KERNEL_CANCELLED in types
    # Resuming after the first event skips it.
    resumed = await _events(
        channel, user, pb.WatchEventsRequest(session_id=session.id, cursor=replay[0].cursor)
    )
    assert [e.cursor for e in resumed] == [e.cursor for e in replay[1:]]
    session_only = await _events(
        channel,
        user,
        pb.WatchEventsRequest(
            session_id=session.id, cursor=start, scope=pb.SESSION_EVENT_SCOPE_SESSION
        ),
    )
    assert pb.SESSION_EVENT_TYPE_KERNEL_CANCELLED not in [e.type for e in session_only]
    assert all(e.session_status for e in session_only)
    with pytest.raises(grpc.aio.AioRpcError) as info:
        await _events(channel, stranger, pb.WatchEventsRequest(session_id=session.id))
    assert info.value.code() == grpc.StatusCode.NOT_FOUND
    with pytest.raises(grpc.aio.AioRpcError) as info:
        await _events(channel, user, pb.WatchEventsRequest(cursor="garbage"))
    assert reason_of(info.value) == "INVALID_FIELD"


async def test_watch_events_follows_a_session_to_running_and_the_end(
    manager: ManagerHandle, channel: grpc.aio.Channel
) -> None:
    group = await make_group(manager)
    user = await member(manager)
    async with agents(channel, group, AGENT):
        session = await create(channel, user, create_request(group, enqueue_only=False))
        cursor = await events.latest_cursor(manager.ctx.redis)
        watch = asyncio.create_task(
            _events(channel, user, pb.WatchEventsRequest(session_id=session.id, cursor=cursor))
        )
        await call(channel, user, "DestroySession", pb.DestroySessionRequest(session_id=session.id))
        seen = await asyncio.wait_for(watch, 20)
    types = [e.type for e in seen]
    assert types[0] == pb.SESSION_EVENT_TYPE_KERNEL_TERMINATING
    assert pb.SESSION_EVENT_TYPE_SESSION_TERMINATING in types
    assert types[-1] == pb.SESSION_EVENT_TYPE_SESSION_TERMINATED
    assert seen[-1].session_status == common.SESSION_STATUS_TERMINATED


async def test_watch_events_sends_keepalives_when_quiet(
    manager: ManagerHandle, channel: grpc.aio.Channel, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(session_streams, "KEEPALIVE_AFTER", timedelta(milliseconds=100))
    group = await make_group(manager)
    user = await member(manager)
    stranger = await member(manager)
    start = await events.latest_cursor(manager.ctx.redis)
    session = await create(channel, user, create_request(group))
    stream: Any = _stub(channel).WatchEvents(
        pb.WatchEventsRequest(session_id=session.id),
        metadata=user.metadata(SERVICE + "WatchEvents"),
    )
    first = await stream.read()
    second = await stream.read()
    stream.cancel()
    assert first.event.type == second.event.type == pb.SESSION_EVENT_TYPE_KEEPALIVE
    assert first.event.cursor and first.event.HasField("time")
    assert not first.event.session_id
    # Everything the stranger may see, from before the session was created: none
    # of it is the user's, so the first message is a keepalive.
    watch_all: Any = _stub(channel).WatchEvents(
        pb.WatchEventsRequest(cursor=start), metadata=stranger.metadata(SERVICE + "WatchEvents")
    )
    seen = await watch_all.read()
    watch_all.cancel()
    assert seen.event.type == pb.SESSION_EVENT_TYPE_KEEPALIVE
