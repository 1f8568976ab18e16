"""A fake SessionService for CLI and SDK tests: a real grpc server, sessions in memory.

It follows the contract of proto/bai/api/manager/v1/session.proto for Create, Get,
List, Destroy, Restart, Execute, StreamLogs, WatchStats and WatchEvents, with the
credential checks and call log of tests.client.fakes. What a session does is
chosen by its image:

* ``python:3.12`` (anything else): PENDING -> SCHEDULED -> PREPARING -> CREATING ->
  RUNNING; ``broken``: PENDING -> SCHEDULED -> PREPARING -> CANCELLED (image pull
  failed); ``stuck``: stays PENDING with a scheduling diagnostic; ``missing``:
  CreateSession answers IMAGE_NOT_FOUND.

A session starts moving when the first WatchEvents call for it is subscribed (so a
watcher sees every step) or at once when CreateSession waits (no enqueue_only).
Execute runs a tiny script, commands separated by ";": ``out TEXT``, ``err TEXT``,
``ask PROMPT`` (waiting_input, then echoes "got <stdin>"), ``wait`` (until
interrupted), ``sigint`` (sends this process SIGINT, then waits), ``exit N``,
``fail MESSAGE``.
"""

from __future__ import annotations

import os
import re
import signal
import threading
import uuid
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import Any

import grpc

from bai.api.common.v1 import execution_pb2, stats_pb2
from bai.api.common.v1 import session_pb2 as common
from bai.api.manager.v1 import auth_pb2_grpc, session_pb2, session_pb2_grpc
from tests.cli.fake_apps import FakeApps
from tests.client.fakes import Abort, Fake, FakeAuth, fail, handler

TERMINAL = {common.SESSION_STATUS_TERMINATED, common.SESSION_STATUS_CANCELLED}
TERMINAL |= {common.SESSION_STATUS_ERROR}
LIVE = [s for s in common.SessionStatus.values() if s and s not in TERMINAL]
STARTING = [
    common.SESSION_STATUS_SCHEDULED,
    common.SESSION_STATUS_PREPARING,
    common.SESSION_STATUS_CREATING,
    common.SESSION_STATUS_RUNNING,
]
EVENT_TYPE = {
    common.SESSION_STATUS_PENDING: session_pb2.SESSION_EVENT_TYPE_SESSION_ENQUEUED,
    common.SESSION_STATUS_SCHEDULED: session_pb2.SESSION_EVENT_TYPE_SESSION_SCHEDULED,
    common.SESSION_STATUS_PREPARING: session_pb2.SESSION_EVENT_TYPE_SESSION_PREPARING,
    common.SESSION_STATUS_CREATING: session_pb2.SESSION_EVENT_TYPE_SESSION_CREATING,
    common.SESSION_STATUS_RUNNING: session_pb2.SESSION_EVENT_TYPE_SESSION_STARTED,
    common.SESSION_STATUS_CANCELLED: session_pb2.SESSION_EVENT_TYPE_SESSION_CANCELLED,
    common.SESSION_STATUS_TERMINATING: session_pb2.SESSION_EVENT_TYPE_SESSION_TERMINATING,
    common.SESSION_STATUS_TERMINATED: session_pb2.SESSION_EVENT_TYPE_SESSION_TERMINATED,
}


@dataclass
class Sessions:
    """In-memory state shared by the servicer and the tests."""

    fake: Fake
    sessions: dict[str, session_pb2.Session] = field(default_factory=dict)
    events: list[session_pb2.SessionEvent] = field(default_factory=list)
    logs: dict[str, list[bytes]] = field(default_factory=dict)
    inputs: list[session_pb2.ExecuteRequest] = field(default_factory=list)
    cond: threading.Condition = field(default_factory=threading.Condition)
    following: threading.Event = field(default_factory=threading.Event)
    moving: set[str] = field(default_factory=set)
    # A manager without WatchEvents: sessions move when GetSession reads them.
    start_on_get: bool = False
    # Started apps per session id (tests.cli.fake_apps).
    apps: dict[str, dict[str, session_pb2.SessionApp]] = field(default_factory=dict)

    def add(self, request: session_pb2.CreateSessionRequest) -> session_pb2.Session:
        s = session_pb2.Session(
            id=str(uuid.uuid4()),
            name=request.name or f"sess-{len(self.sessions) + 1:04d}",
            type=request.type or common.SESSION_TYPE_INTERACTIVE,
            image=request.image,
            requested_slots=request.resource_slots,
            scaling_group=request.scaling_group or "default",
            tag=request.tag,
            startup_command=request.startup_command,
            environ=request.environ,
            owner_access_key="AKIATESTTESTTEST0001",
        )
        s.created_at.FromSeconds(1_700_000_000 + len(self.sessions))
        s.kernels.add(id=str(uuid.uuid4()), session_id=s.id, cluster_role="main", cluster_idx=1)
        if "stuck" in request.image:
            s.scheduling_diagnostics.add(
                check=session_pb2.SCHEDULING_CHECK_AGENT_RESOURCES,
                message="no agent has 4 cuda.device free",
                shortfalls=[session_pb2.SlotShortfall(slot="cuda.device", requested="4")],
            )
        self.sessions[s.id] = s
        self.logs[s.id] = [b"booting\n", b"ready\n"]
        self.set_status(s, common.SESSION_STATUS_PENDING)
        return s

    def set_status(
        self, s: session_pb2.Session, status: Any, reason: Any = 0, msg: str = ""
    ) -> None:
        with self.cond:
            s.status, s.status_reason, s.status_message = status, reason, msg
            kernel_status = "KERNEL_STATUS_" + common.SessionStatus.Name(status)[15:]
            s.kernels[0].status = common.KernelStatus.Value(kernel_status)
            when = s.status_history.add(status=status, reason=reason, message=msg).time
            when.FromSeconds(1_700_000_000 + len(self.events))
            if status == common.SESSION_STATUS_RUNNING:
                del s.scheduling_diagnostics[:]
            event = session_pb2.SessionEvent(
                cursor=f"c{len(self.events) + 1}",
                type=EVENT_TYPE.get(status, session_pb2.SESSION_EVENT_TYPE_SESSION_STATUS_CHANGED),
                session_id=s.id,
                session_name=s.name,
                session_status=status,
                reason=reason,
                message=msg,
            )
            event.time.CopyFrom(when)
            self.events.append(event)
            self.cond.notify_all()

    def wake(self) -> None:
        with self.cond:
            self.cond.notify_all()

    def start(self, s: session_pb2.Session) -> None:
        """Move a new session along its image's script (once)."""
        with self.cond:
            if s.id in self.moving or s.status != common.SESSION_STATUS_PENDING:
                return
            self.moving.add(s.id)
        if "stuck" in s.image:
            return
        for status in STARTING:
            if "broken" in s.image and status == common.SESSION_STATUS_CREATING:
                reason = common.LIFECYCLE_REASON_IMAGE_PULL_FAILED
                self.set_status(s, common.SESSION_STATUS_CANCELLED, reason, "image pull failed")
                return
            self.set_status(s, status)

    def get(self, ref: str) -> session_pb2.Session:
        if ref not in self.sessions:
            raise fail(grpc.StatusCode.NOT_FOUND, f"session {ref} not found")
        return self.sessions[ref]

    def running(self, ref: str) -> session_pb2.Session:
        s = self.get(ref)
        if s.status != common.SESSION_STATUS_RUNNING:
            name = common.SessionStatus.Name(s.status)
            raise fail(
                grpc.StatusCode.FAILED_PRECONDITION, f"session is {name}", "SESSION_NOT_READY"
            )
        return s


def streaming(fn: Callable[..., Iterator[Any]]) -> Callable[..., Iterator[Any]]:
    """``handler`` for server-streaming methods: errors before or while streaming."""

    def wrapped(self: Any, request: Any, context: grpc.ServicerContext) -> Iterator[Any]:
        try:
            self.fake.enter(context, request, f"/{self.SERVICE}/{fn.__name__}")
            context.add_callback(self.state.wake)
            yield from fn(self, request, context)
        except Abort as exc:
            context.abort_with_status(exc.status)

    wrapped.__name__ = fn.__name__
    return wrapped


class FakeSessions(FakeApps, session_pb2_grpc.SessionServiceServicer):
    SERVICE = "bai.api.manager.v1.SessionService"

    def __init__(self, state: Sessions) -> None:
        self.state = state
        self.fake = state.fake

    @handler
    def CreateSession(self, request: Any, context: Any) -> Any:
        if "missing" in request.image:
            raise fail(grpc.StatusCode.NOT_FOUND, "no such image", "IMAGE_NOT_FOUND")
        if request.name and not re.fullmatch(r"[A-Za-z0-9][A-Za-z0-9._-]{3,63}", request.name):
            raise fail(
                grpc.StatusCode.INVALID_ARGUMENT,
                "invalid request",
                "INVALID_FIELD",
                violations=[("name", "must be 4-64 characters of [A-Za-z0-9._-]")],
            )
        live = [s for s in self.state.sessions.values() if s.status not in TERMINAL]
        if request.name and any(s.name == request.name for s in live):
            raise fail(grpc.StatusCode.ALREADY_EXISTS, f"session {request.name} exists")
        s = self.state.add(request)
        if not request.enqueue_only:
            self.state.start(s)
        return session_pb2.CreateSessionResponse(session=s)

    @handler
    def GetSession(self, request: Any, context: Any) -> Any:
        s = self.state.get(request.session_id)
        if self.state.start_on_get:
            self.state.start(s)
        return session_pb2.GetSessionResponse(session=s)

    @handler
    def ListSessions(self, request: Any, context: Any) -> Any:
        found = [
            s
            for s in reversed(self.state.sessions.values())
            if (not request.statuses or s.status in request.statuses)
            and (not request.name or s.name == request.name)
        ]
        start = int(request.page_token or 0)
        end = start + (request.page_size or 100)
        listed = []
        for s in found[start:end]:
            copy = session_pb2.Session()
            copy.CopyFrom(s)
            del copy.status_history[:], copy.scheduling_diagnostics[:]
            listed.append(copy)
        token = str(end) if end < len(found) else ""
        return session_pb2.ListSessionsResponse(sessions=listed, next_page_token=token)

    @handler
    def DestroySession(self, request: Any, context: Any) -> Any:
        s = self.state.get(request.session_id)
        if s.tag == "in-use" and not request.recursive:
            raise fail(grpc.StatusCode.FAILED_PRECONDITION, "others depend on it", "IN_USE")
        reason = common.LIFECYCLE_REASON_FORCE_TERMINATED if request.forced else 1
        if s.status == common.SESSION_STATUS_PENDING:
            self.state.set_status(s, common.SESSION_STATUS_CANCELLED, reason)
        elif s.status not in TERMINAL:
            self.state.set_status(s, common.SESSION_STATUS_TERMINATING, reason)
            self.state.set_status(s, common.SESSION_STATUS_TERMINATED, reason)
        return session_pb2.DestroySessionResponse(session=s)

    @handler
    def RestartSession(self, request: Any, context: Any) -> Any:
        s = self.state.running(request.session_id)
        self.state.set_status(s, common.SESSION_STATUS_RESTARTING)
        self.state.set_status(s, common.SESSION_STATUS_RUNNING)
        return session_pb2.RestartSessionResponse(session=s)

    @handler
    def RenameSession(self, request: Any, context: Any) -> Any:
        s = self.state.get(request.session_id)
        if len(request.new_name) < 4:
            raise fail(grpc.StatusCode.INVALID_ARGUMENT, "new_name: too short", "INVALID_FIELD")
        s.name = request.new_name
        return session_pb2.RenameSessionResponse(session=s)

    @handler
    def InterruptSession(self, request: Any, context: Any) -> Any:
        self.state.running(request.session_id)
        return session_pb2.InterruptSessionResponse()

    @streaming
    def WatchEvents(self, request: Any, context: grpc.ServicerContext) -> Iterator[Any]:
        state = self.state
        watched = state.get(request.session_id) if request.session_id else None
        with state.cond:
            index = len(state.events)
            if request.cursor:
                if not request.cursor.startswith("c") or not request.cursor[1:].isdigit():
                    raise fail(grpc.StatusCode.OUT_OF_RANGE, "cursor expired", "CURSOR_EXPIRED")
                index = int(request.cursor[1:])
        if watched is not None:
            threading.Thread(target=state.start, args=(watched,), daemon=True).start()
        while context.is_active():
            with state.cond:
                if index >= len(state.events):
                    if watched is not None and watched.status in TERMINAL:
                        return
                    state.cond.wait()
                    continue
                event = state.events[index]
                index += 1
            if watched is None or event.session_id == watched.id:
                yield session_pb2.WatchEventsResponse(event=event)

    @streaming
    def StreamLogs(self, request: Any, context: grpc.ServicerContext) -> Iterator[Any]:
        s = self.state.get(request.session_id)
        sent = 0
        if request.HasField("tail"):
            sent = max(0, len(self.state.logs[s.id]) - request.tail)
        while context.is_active():
            with self.state.cond:
                lines = self.state.logs[s.id][sent:]
                if not lines and (not request.follow or s.status in TERMINAL):
                    return
                if not lines:
                    self.state.following.set()
                    self.state.cond.wait()
                    continue
                sent += len(lines)
            for line in lines:
                entry = execution_pb2.LogEntry(
                    kernel_id=s.kernels[0].id, stream=execution_pb2.OUTPUT_STREAM_STDOUT, data=line
                )
                yield session_pb2.StreamLogsResponse(entry=entry)

    @streaming
    def WatchStats(self, request: Any, context: grpc.ServicerContext) -> Iterator[Any]:
        if request.HasField("interval") and request.interval.ToTimedelta().total_seconds() < 1:
            raise fail(grpc.StatusCode.INVALID_ARGUMENT, "interval under 1 s", "INVALID_FIELD")
        s = self.state.running(request.session_id)
        for i in (1, 2):  # then the session "ends"
            stats = stats_pb2.KernelStats(
                kernel_id=s.kernels[0].id,
                cpu_util_percent=12.5 * i,
                mem_used_bytes=(256 << 20) * i,
                mem_limit_bytes=1 << 30,
                net_rx_bytes=1024 * i,
            )
            response = session_pb2.WatchStatsResponse(kernels=[stats])
            response.time.FromSeconds(1_700_000_000 + i)
            yield response

    @streaming
    def Execute(self, requests: Iterator[Any], context: grpc.ServicerContext) -> Iterator[Any]:
        first = next(requests)
        if first.WhichOneof("payload") != "start":
            raise fail(grpc.StatusCode.FAILED_PRECONDITION, "start first", "STREAM_OUT_OF_ORDER")
        s = self.state.running(first.session_id)
        self.state.inputs.append(first)
        started = execution_pb2.ExecutionStarted(run_id="run-1", kernel_id=s.kernels[0].id)
        yield session_pb2.ExecuteResponse(started=started)
        seq = iter(range(1_000_000))

        def out(stream: int, text: str) -> session_pb2.ExecuteResponse:
            chunk = execution_pb2.ExecutionOutput(stream=stream, data=text.encode(), seq=next(seq))  # type: ignore[arg-type]
            return session_pb2.ExecuteResponse(output=chunk)

        result = execution_pb2.ExecutionResult(
            run_id="run-1", status=execution_pb2.EXECUTION_STATUS_FINISHED, exit_code=0
        )
        for command in (c.strip() for c in first.start.code.split(";")):
            word, _, arg = command.partition(" ")
            if word in ("out", "err"):
                stream = execution_pb2.OUTPUT_STREAM_STDOUT if word == "out" else 2
                yield out(stream, arg + "\n")
            elif word == "ask":
                yield session_pb2.ExecuteResponse(
                    waiting_input=execution_pb2.ExecutionWaitingInput(prompt=arg)
                )
                given = next((r for r in requests if self._note(r) and r.HasField("stdin")), None)
                text = (given.stdin.data.decode().strip() if given else "") or "EOF"
                yield out(execution_pb2.OUTPUT_STREAM_STDOUT, f"got {text}\n")
            elif word in ("wait", "sigint"):
                if word == "sigint":
                    os.kill(os.getpid(), signal.SIGINT)
                next((r for r in requests if self._note(r) and r.HasField("interrupt")), None)
                result.status = execution_pb2.EXECUTION_STATUS_INTERRUPTED
                result.ClearField("exit_code")
                break
            elif word == "exit":
                result.exit_code = int(arg)
            elif word == "fail":
                result.status, result.message = execution_pb2.EXECUTION_STATUS_FAILED, arg
                result.ClearField("exit_code")
        yield session_pb2.ExecuteResponse(result=result)

    def _note(self, request: session_pb2.ExecuteRequest) -> bool:
        self.state.inputs.append(request)
        return True


class SessionServer:
    """The fake auth + session services on one port; ``restart()`` keeps port and state."""

    def __init__(self, fake: Fake | None = None) -> None:
        self.fake = fake or Fake()
        self.state = Sessions(self.fake)
        self.port = 0
        self._server: grpc.Server | None = None

    @property
    def address(self) -> str:
        return f"127.0.0.1:{self.port}"

    def start(self) -> None:
        server = grpc.server(ThreadPoolExecutor(max_workers=16))
        auth_pb2_grpc.add_AuthServiceServicer_to_server(FakeAuth(self.fake), server)
        session_pb2_grpc.add_SessionServiceServicer_to_server(FakeSessions(self.state), server)
        self.port = server.add_insecure_port(f"127.0.0.1:{self.port}")
        server.start()
        self.fake.address = self.address
        self._server = server

    def stop(self) -> None:
        if self._server is not None:
            self._server.stop(None).wait()
            self._server = None
            self.state.wake()

    def restart(self) -> None:
        self.stop()
        self.start()

    def __enter__(self) -> SessionServer:
        self.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()
