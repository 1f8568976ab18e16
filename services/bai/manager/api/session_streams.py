"""SessionService streaming RPCs: Execute, StreamLogs, WatchStats, WatchEvents."""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta

from google.protobuf.timestamp_pb2 import Timestamp
from sqlalchemy import select

from bai.api.agent.v1 import agent_pb2
from bai.api.common.v1 import session_pb2 as common
from bai.api.manager.v1 import session_pb2 as pb
from bai.api.manager.v1 import session_pb2_grpc as pb_grpc
from bai.common.errors import (
    FailedPrecondition,
    FieldViolation,
    InvalidArgument,
    NotFound,
)
from bai.manager.api.rpc import Call
from bai.manager.api.stream_auth import server_stream
from bai.manager.auth.principal import Principal, Role
from bai.manager.context import ManagerContext
from bai.manager.db.compute import KernelRow, SessionRow
from bai.manager.sessions import control, events, lifecycle, queries, relay
from bai.manager.sessions.queries import LoadedSession

KEEPALIVE_AFTER = timedelta(seconds=15)
_MS = timedelta(milliseconds=1)
# Statuses in which kernels run and produce stats.
STATS_STATUSES = frozenset({"RUNNING", "RUNNING_DEGRADED", "RESTARTING"})
_TERMINAL_VALUES = {
    pb.SESSION_EVENT_TYPE_SESSION_CANCELLED,
    pb.SESSION_EVENT_TYPE_SESSION_TERMINATED,
}


def _kernel(loaded: LoadedSession, kernel_id: str) -> KernelRow:
    """The named kernel of the session, or its main kernel when empty."""
    if not kernel_id:
        main = loaded.main_kernel
        if main is None:
            raise NotFound("the session has no kernels")
        return main
    for kernel in loaded.kernels:
        if str(kernel.id) == kernel_id:
            return kernel
    raise NotFound("kernel not found in this session")


def may_see_event(p: Principal, scope: events.EventScope) -> bool:
    if p.role is Role.SUPERADMIN:
        return True
    if p.role in (Role.ADMIN, Role.MONITOR):
        return scope.domain_name == p.domain_name
    return scope.user_id == str(p.user_id)


def _in_scope(event: pb.SessionEvent, scope: int) -> bool:
    is_kernel_event = event.type >= pb.SESSION_EVENT_TYPE_KERNEL_PREPARING
    if scope == pb.SESSION_EVENT_SCOPE_SESSION:
        return not is_kernel_event
    if scope == pb.SESSION_EVENT_SCOPE_KERNEL:
        return is_kernel_event
    return True


def ends_session(event: pb.SessionEvent) -> bool:
    if event.type in _TERMINAL_VALUES:
        return True
    return event.type == pb.SESSION_EVENT_TYPE_SESSION_STATUS_CHANGED and (
        event.session_status == common.SESSION_STATUS_ERROR
    )


class SessionStreams(pb_grpc.SessionServiceServicer):
    ctx: ManagerContext

    @server_stream()
    async def Execute(
        self, requests: AsyncIterator[pb.ExecuteRequest], call: Call
    ) -> AsyncIterator[pb.ExecuteResponse]:
        first = await anext(aiter(requests), None)
        if first is None:
            raise InvalidArgument([FieldViolation("start", "send the start message first")])
        if first.WhichOneof("payload") != "start":
            raise FailedPrecondition(
                "the first message must carry start", reason="STREAM_OUT_OF_ORDER"
            )
        session_id = queries.parse_session_id(first.session_id)
        async with self.ctx.sessions() as db:
            loaded = await queries.load_writable(db, call.principal, session_id)
        kernel = _kernel(loaded, first.kernel_id)
        if loaded.session.status not in ("RUNNING", "RUNNING_DEGRADED") or (
            kernel.status != "RUNNING" or not kernel.agent_id
        ):
            raise control.not_ready(loaded.session)
        async for reply in relay.execute(
            self.ctx.agent_pool, kernel.agent_id, str(kernel.id), first.start, requests
        ):
            yield reply

    @server_stream()
    async def StreamLogs(
        self, request: pb.StreamLogsRequest, call: Call
    ) -> AsyncIterator[pb.StreamLogsResponse]:
        session_id = queries.parse_session_id(request.session_id)
        if request.HasField("tail") and request.tail < 0:
            raise InvalidArgument([FieldViolation("tail", "must not be negative")])
        async with self.ctx.sessions() as db:
            loaded = await queries.load_visible(db, call.principal, session_id)
        kernel = _kernel(loaded, request.kernel_id)
        if not kernel.agent_id:
            return
        agent_request = agent_pb2.StreamLogsRequest(kernel_id=str(kernel.id), follow=request.follow)
        if request.HasField("tail"):
            agent_request.tail = request.tail
        if request.HasField("since"):
            agent_request.since.CopyFrom(request.since)
        async for reply in relay.stream_logs(self.ctx.agent_pool, kernel.agent_id, agent_request):
            yield reply

    @server_stream()
    async def WatchStats(
        self, request: pb.WatchStatsRequest, call: Call
    ) -> AsyncIterator[pb.WatchStatsResponse]:
        session_id = queries.parse_session_id(request.session_id)
        interval = (
            request.interval.ToTimedelta() if request.HasField("interval") else timedelta(seconds=5)
        )
        if interval < timedelta(seconds=1):
            raise InvalidArgument([FieldViolation("interval", "must be at least 1 s")])
        async with self.ctx.sessions() as db:
            loaded = await queries.load_visible(db, call.principal, session_id)
        if loaded.session.status not in STATS_STATUSES:
            raise control.not_ready(loaded.session)
        wanted = {str(k) for k in request.kernel_ids}
        known = {str(k.id) for k in loaded.kernels}
        if wanted - known:
            raise NotFound("kernel not found in this session")
        by_agent: dict[str, list[str]] = {}
        for kernel in loaded.kernels:
            if kernel.agent_id and (not wanted or str(kernel.id) in wanted):
                by_agent.setdefault(kernel.agent_id, []).append(str(kernel.id))
        if not by_agent:
            raise control.not_ready(loaded.session)

        async def still_live() -> bool:
            async with self.ctx.sessions() as db:
                status = await db.scalar(
                    select(SessionRow.status).where(SessionRow.id == session_id)
                )
            return status not in lifecycle.SESSION_TERMINAL and status != "TERMINATING"

        async for sample in relay.watch_stats(self.ctx.agent_pool, by_agent, interval, still_live):
            yield sample

    @server_stream()
    async def WatchEvents(
        self, request: pb.WatchEventsRequest, call: Call
    ) -> AsyncIterator[pb.WatchEventsResponse]:
        session_id: uuid.UUID | None = None
        if request.session_id:
            session_id = queries.parse_session_id(request.session_id)
        if request.project_id:
            try:
                uuid.UUID(request.project_id)
            except ValueError as exc:
                raise InvalidArgument([FieldViolation("project_id", "must be a UUID")]) from exc
        if request.scope not in pb.SessionEventScope.values():
            raise InvalidArgument([FieldViolation("scope", "must be a known scope")])
        redis = self.ctx.redis
        cursor = (
            await events.check_cursor(redis, request.cursor)
            if request.cursor
            else await events.latest_cursor(redis)
        )
        if session_id is not None:
            async with self.ctx.sessions() as db:
                loaded = await queries.load_visible(db, call.principal, session_id)
            if loaded.session.status in lifecycle.SESSION_TERMINAL and not request.cursor:
                return
        loop = asyncio.get_running_loop()
        last_sent = loop.time()
        while True:
            quiet = timedelta(seconds=loop.time() - last_sent)
            found = await events.read_after(redis, cursor, block=max(KEEPALIVE_AFTER - quiet, _MS))
            for stored in found:
                cursor = stored.cursor
                if not _wanted(call.principal, request, session_id, stored):
                    continue
                if _in_scope(stored.event, request.scope):
                    yield pb.WatchEventsResponse(event=stored.event)
                    last_sent = loop.time()
                if session_id is not None and ends_session(stored.event):
                    return
            # Silence is what the client saw, not the feed: other sessions' events
            # do not keep its proxies from timing out.
            if timedelta(seconds=loop.time() - last_sent) >= KEEPALIVE_AFTER:
                yield pb.WatchEventsResponse(
                    event=pb.SessionEvent(
                        cursor=cursor, type=pb.SESSION_EVENT_TYPE_KEEPALIVE, time=_now()
                    )
                )
                last_sent = loop.time()


def _wanted(
    p: Principal,
    request: pb.WatchEventsRequest,
    session_id: uuid.UUID | None,
    stored: events.StoredEvent,
) -> bool:
    if not may_see_event(p, stored.scope):
        return False
    if session_id is not None and stored.scope.session_id != str(session_id):
        return False
    return not request.project_id or stored.scope.project_id == request.project_id


def _now() -> Timestamp:
    ts = Timestamp()
    ts.FromDatetime(datetime.now(UTC))
    return ts
