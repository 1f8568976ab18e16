"""SessionService: thin edge over bai.manager.sessions (unary RPCs).

The streaming RPCs (Execute, StreamLogs, WatchStats, WatchEvents) are in
session_streams.py, the file RPCs in session_files.py; apps (StartService and
friends) are in bai.manager.apps, commits in bai.manager.sessions.commit.
"""

from __future__ import annotations

import uuid
from datetime import UTC, datetime

from bai.api.agent.v1 import agent_pb2
from bai.api.manager.v1 import session_pb2 as pb
from bai.common.errors import BaiError
from bai.manager.agents import wire
from bai.manager.agents.kernel_updates import KernelReport, apply_kernel_report, publish_quietly
from bai.manager.api import app_requests
from bai.manager.api.rpc import Call, unary
from bai.manager.api.session_files import SessionFiles
from bai.manager.api.session_requests import parse_create, session_name
from bai.manager.api.session_streams import SessionStreams
from bai.manager.context import ManagerContext
from bai.manager.db.compute import KernelRow
from bai.manager.sessions import commit, control, create, events, names, queries, waiting
from bai.manager.sessions.scheduling_loop import wake
from bai.manager.validation import Violations


def _now() -> datetime:
    return datetime.now(UTC)


def _session_id(value: str) -> uuid.UUID:
    return queries.parse_session_id(value)


class SessionServicer(SessionStreams, SessionFiles):
    SERVICE = "bai.api.manager.v1.SessionService"

    def __init__(self, ctx: ManagerContext) -> None:
        self.ctx = ctx

    async def _get(self, call: Call, session_id: uuid.UUID) -> pb.Session:
        async with self.ctx.sessions() as db:
            loaded = await queries.load_visible(db, call.principal, session_id)
        return queries.session_to_proto(loaded, detail=True)

    # The session row keeps the request_id (create.py replays it), so the generic
    # request log would only repeat that work.
    @unary(audit=("session", "create"), replays=False)
    async def CreateSession(
        self, request: pb.CreateSessionRequest, call: Call
    ) -> pb.CreateSessionResponse:
        spec = parse_create(request)
        # Waiting starts from the events before the insert, so none is missed.
        cursor = "" if request.enqueue_only else await events.latest_cursor(self.ctx.redis)
        async with self.ctx.sessions() as db, db.begin():
            loaded, pending = await create.enqueue(
                db, call.principal, spec, _now(), self.ctx.storage
            )
        session = loaded.session
        call.entity_id, call.domain_name = str(session.id), session.domain_name
        await publish_quietly(self.ctx.redis, pending)
        await wake(self.ctx.redis)
        if request.enqueue_only:
            # The rows as committed: no need to read them back.
            queries.require_visible(call.principal, session)
            return pb.CreateSessionResponse(session=queries.session_to_proto(loaded, detail=True))
        max_wait = request.max_wait.ToTimedelta().total_seconds() or None
        timed_out = await waiting.wait_settled(
            self.ctx.sessions, self.ctx.redis, session.id, max_wait, cursor
        )
        return pb.CreateSessionResponse(
            session=await self._get(call, session.id), wait_timed_out=timed_out
        )

    @unary()
    async def GetSession(self, request: pb.GetSessionRequest, call: Call) -> pb.GetSessionResponse:
        return pb.GetSessionResponse(session=await self._get(call, _session_id(request.session_id)))

    @unary()
    async def ListSessions(
        self, request: pb.ListSessionsRequest, call: Call
    ) -> pb.ListSessionsResponse:
        v = Violations()
        size = v.page_size(request.page_size)
        project_id = v.uuid("project_id", request.project_id) if request.project_id else None
        user_id = v.uuid("user_id", request.user_id) if request.user_id else None
        for i, status in enumerate(request.statuses):
            if status not in names.SESSION_STATUS.values():
                v.add(f"statuses[{i}]", "must be a known session status")
        for i, kind in enumerate(request.types):
            if kind not in names.SESSION_TYPES.values():
                v.add(f"types[{i}]", "must be a known session type")
        v.text("name", request.name, 64)
        v.text("access_key", request.access_key, 32)
        v.text("scaling_group", request.scaling_group, 64)
        v.text("agent_id", request.agent_id, 64)
        v.raise_if_any()
        f = queries.SessionFilter(
            statuses=tuple(names.session_status_name(s) for s in request.statuses),
            types=tuple(names.session_type_name(t) for t in request.types),
            name=request.name,
            project_id=project_id,
            user_id=user_id,
            access_key=request.access_key,
            scaling_group=request.scaling_group,
            agent_id=request.agent_id,
            created_after=request.created_after.ToDatetime(tzinfo=UTC)
            if request.HasField("created_after")
            else None,
            created_before=request.created_before.ToDatetime(tzinfo=UTC)
            if request.HasField("created_before")
            else None,
        )
        async with self.ctx.sessions() as db:
            rows, token = await queries.list_sessions(
                db, call.principal, f, size, request.page_token
            )
        return pb.ListSessionsResponse(
            sessions=[queries.session_to_proto(r, detail=False) for r in rows],
            next_page_token=token,
        )

    @unary(audit=("session", "destroy"))
    async def DestroySession(
        self, request: pb.DestroySessionRequest, call: Call
    ) -> pb.DestroySessionResponse:
        session_id = _session_id(request.session_id)
        call.entity_id = str(session_id)
        now = _now()
        async with self.ctx.sessions() as db, db.begin():
            loaded, orders = await control.destroy(
                db,
                call.principal,
                session_id,
                forced=request.forced,
                recursive=request.recursive,
                now=now,
            )
        call.domain_name = loaded.session.domain_name
        for order in orders:
            await publish_quietly(self.ctx.redis, order.events)
        for order in orders:
            ended = await control.send_destroy(self.ctx.sessions, self.ctx.agent_pool, order, now)
            await publish_quietly(self.ctx.redis, ended)
        await wake(self.ctx.redis)
        return pb.DestroySessionResponse(session=await self._get(call, session_id))

    @unary(audit=("session", "restart"))
    async def RestartSession(
        self, request: pb.RestartSessionRequest, call: Call
    ) -> pb.RestartSessionResponse:
        session_id = _session_id(request.session_id)
        call.entity_id = str(session_id)
        async with self.ctx.sessions() as db, db.begin():
            loaded, pending = await control.begin_restart(db, call.principal, session_id, _now())
        call.domain_name = loaded.session.domain_name
        await publish_quietly(self.ctx.redis, pending)
        failure: BaiError | None = None
        for kernel in loaded.kernels:
            failure = await self._restart_kernel(kernel) or failure
        if failure is not None:
            raise failure
        return pb.RestartSessionResponse(session=await self._get(call, session_id))

    async def _restart_kernel(self, kernel: KernelRow) -> BaiError | None:
        """Restart on the agent; on failure the kernel goes back to RUNNING."""
        agent_id = kernel.agent_id or ""
        request = agent_pb2.RestartKernelRequest(
            kernel_id=str(kernel.id), request_id=uuid.uuid4().hex
        )
        failure: BaiError | None = None
        try:
            reply = await self.ctx.agent_pool.call(agent_id, "RestartKernel", request)
            report = wire.reported_kernel(reply.kernel)
        except BaiError as exc:
            failure = exc
            report = KernelReport(str(kernel.id), "RUNNING", "restarting", exc.message)
        async with self.ctx.sessions() as db, db.begin():
            pending = await apply_kernel_report(db, agent_id, report, _now())
        await publish_quietly(self.ctx.redis, pending)
        return failure

    @unary(audit=("session", "rename"))
    async def RenameSession(
        self, request: pb.RenameSessionRequest, call: Call
    ) -> pb.RenameSessionResponse:
        session_id = _session_id(request.session_id)
        v = Violations()
        session_name(v, "new_name", request.new_name)
        v.raise_if_any()
        call.entity_id = str(session_id)
        async with self.ctx.sessions() as db, db.begin():
            loaded = await control.rename(db, call.principal, session_id, request.new_name)
        call.domain_name = loaded.session.domain_name
        return pb.RenameSessionResponse(session=await self._get(call, session_id))

    @unary(audit=("session", "interrupt"))
    async def InterruptSession(
        self, request: pb.InterruptSessionRequest, call: Call
    ) -> pb.InterruptSessionResponse:
        session_id = _session_id(request.session_id)
        call.entity_id = str(session_id)
        async with self.ctx.sessions() as db:
            loaded = await queries.load_writable(db, call.principal, session_id)
        call.domain_name = loaded.session.domain_name
        if loaded.session.status not in ("RUNNING", "RUNNING_DEGRADED"):
            raise control.not_ready(loaded.session)
        for kernel in loaded.kernels:
            if kernel.status == "RUNNING" and kernel.agent_id:
                await self.ctx.agent_pool.call(
                    kernel.agent_id,
                    "InterruptKernel",
                    agent_pb2.InterruptKernelRequest(kernel_id=str(kernel.id)),
                )
        return pb.InterruptSessionResponse()

    @unary()
    async def GetStatusHistory(
        self, request: pb.GetStatusHistoryRequest, call: Call
    ) -> pb.GetStatusHistoryResponse:
        session_id = _session_id(request.session_id)
        async with self.ctx.sessions() as db:
            loaded = await queries.load_visible(db, call.principal, session_id)
        return queries.status_history_to_proto(loaded)

    @unary(audit=("session", "start-service"))
    async def StartService(
        self, request: pb.StartServiceRequest, call: Call
    ) -> pb.StartServiceResponse:
        session_id = _session_id(request.session_id)
        want = app_requests.parse_start(request)
        call.entity_id = str(session_id)
        app = await self.ctx.apps.start(call.principal, session_id, want)
        return pb.StartServiceResponse(app=app)

    @unary(audit=("session", "shutdown-service"))
    async def ShutdownService(
        self, request: pb.ShutdownServiceRequest, call: Call
    ) -> pb.ShutdownServiceResponse:
        session_id = _session_id(request.session_id)
        service = app_requests.parse_service(request)
        call.entity_id = str(session_id)
        await self.ctx.apps.stop(call.principal, session_id, service)
        return pb.ShutdownServiceResponse()

    @unary()
    async def ListServices(
        self, request: pb.ListServicesRequest, call: Call
    ) -> pb.ListServicesResponse:
        session_id = _session_id(request.session_id)
        return pb.ListServicesResponse(apps=await self.ctx.apps.list(call.principal, session_id))

    @unary(audit=("session", "commit"))
    async def CommitSession(
        self, request: pb.CommitSessionRequest, call: Call
    ) -> pb.CommitSessionResponse:
        session_id = _session_id(request.session_id)
        call.entity_id = str(session_id)
        want = commit.parse_commit(session_id, request.image_name, request.image_tag, _now())
        task = await commit.start_commit(
            self.ctx.sessions, self.ctx.agent_pool, self.ctx.tasks, call.principal, want
        )
        return pb.CommitSessionResponse(task_id=task.id)
