"""Reading sessions: who may see which, loading with kernels, paging, proto conversion.

Visibility: the owner (same user); admins and monitors within their domain;
superadmins everywhere. Anyone else gets NOT_FOUND, never a hint that the
session exists. Writes additionally refuse monitors (READ_ONLY_ROLE).
"""

from __future__ import annotations

import uuid
from collections.abc import Sequence
from dataclasses import asdict, dataclass
from datetime import datetime
from typing import Any

from google.protobuf.duration_pb2 import Duration
from sqlalchemy import Select, select
from sqlalchemy.ext.asyncio import AsyncSession

from bai.api.common.v1 import session_pb2 as common_session_pb2
from bai.api.common.v1 import types_pb2
from bai.api.manager.v1 import session_pb2
from bai.common.errors import FieldViolation, InvalidArgument, NotFound, PermissionDenied
from bai.manager.api.convert import timestamp
from bai.manager.auth.access import can_read_domain_objects
from bai.manager.auth.principal import Principal, Role
from bai.manager.db.compute import KernelRow, SessionRow
from bai.manager.paging import decode_token, encode_token
from bai.manager.sessions import names


@dataclass
class LoadedSession:
    session: SessionRow
    kernels: list[KernelRow]

    @property
    def main_kernel(self) -> KernelRow | None:
        for kernel in self.kernels:
            if kernel.cluster_role == "main":
                return kernel
        return self.kernels[0] if self.kernels else None


def may_see(p: Principal, session: SessionRow) -> bool:
    return session.user_id == p.user_id or can_read_domain_objects(p, session.domain_name)


def require_visible(p: Principal, session: SessionRow | None) -> SessionRow:
    if session is None or not may_see(p, session):
        raise NotFound("session not found")
    return session


def require_writable(p: Principal, session: SessionRow | None) -> SessionRow:
    """The owner, a domain admin or a superadmin; monitors only read."""
    row = require_visible(p, session)
    if p.role is Role.MONITOR:
        raise PermissionDenied("monitors cannot change sessions", reason="READ_ONLY_ROLE")
    if row.user_id != p.user_id and p.role is Role.USER:
        raise NotFound("session not found")
    return row


def parse_session_id(value: str, field_name: str = "session_id") -> uuid.UUID:
    try:
        return uuid.UUID(value)
    except ValueError as exc:
        raise InvalidArgument([FieldViolation(field_name, "must be a UUID")]) from exc


async def load(
    db: AsyncSession, session_id: uuid.UUID, *, lock: bool = False
) -> LoadedSession | None:
    """The session and its kernels (main first); `lock` takes row locks on both."""
    query = select(SessionRow).where(SessionRow.id == session_id)
    if lock:
        query = query.with_for_update()
    session = (await db.execute(query)).scalar_one_or_none()
    if session is None:
        return None
    kq = select(KernelRow).where(KernelRow.session_id == session_id)
    if lock:
        kq = kq.with_for_update()
    kernels = list((await db.execute(kq)).scalars())
    kernels.sort(key=lambda k: (k.cluster_role != "main", k.cluster_role, k.cluster_idx))
    return LoadedSession(session, kernels)


async def load_many(
    db: AsyncSession, session_ids: Sequence[uuid.UUID]
) -> dict[uuid.UUID, LoadedSession]:
    """Several sessions with their kernels (main first) in two statements; missing
    ids are left out."""
    if not session_ids:
        return {}
    rows = await db.execute(select(SessionRow).where(SessionRow.id.in_(session_ids)))
    out = {session.id: LoadedSession(session, []) for session in rows.scalars()}
    kernels = await db.execute(select(KernelRow).where(KernelRow.session_id.in_(list(out))))
    for kernel in kernels.scalars():
        out[kernel.session_id].kernels.append(kernel)
    for loaded in out.values():
        loaded.kernels.sort(key=lambda k: (k.cluster_role != "main", k.cluster_role, k.cluster_idx))
    return out


async def load_visible(
    db: AsyncSession, p: Principal, session_id: uuid.UUID, *, lock: bool = False
) -> LoadedSession:
    loaded = await load(db, session_id, lock=lock)
    require_visible(p, loaded.session if loaded else None)
    assert loaded is not None
    return loaded


async def load_writable(
    db: AsyncSession, p: Principal, session_id: uuid.UUID, *, lock: bool = False
) -> LoadedSession:
    loaded = await load(db, session_id, lock=lock)
    require_writable(p, loaded.session if loaded else None)
    assert loaded is not None
    return loaded


@dataclass(frozen=True)
class SessionFilter:
    statuses: tuple[str, ...] = ()
    types: tuple[str, ...] = ()
    name: str = ""
    project_id: uuid.UUID | None = None
    user_id: uuid.UUID | None = None
    access_key: str = ""
    scaling_group: str = ""
    agent_id: str = ""
    created_after: datetime | None = None
    created_before: datetime | None = None


def _scoped(p: Principal) -> Select[Any]:
    query = select(SessionRow)
    if p.role is Role.SUPERADMIN:
        return query
    if p.role in (Role.ADMIN, Role.MONITOR):
        return query.where(SessionRow.domain_name == p.domain_name)
    return query.where(SessionRow.user_id == p.user_id)


async def list_sessions(
    db: AsyncSession, p: Principal, f: SessionFilter, page_size: int, page_token: str
) -> tuple[list[LoadedSession], str]:
    query_key = {"list": "sessions", "filter": asdict(f), "caller": str(p.user_id)}
    after = decode_token(page_token, query_key)
    query = _scoped(p)
    if f.statuses:
        query = query.where(SessionRow.status.in_(f.statuses))
    if f.types:
        query = query.where(SessionRow.session_type.in_(f.types))
    if f.name:
        query = query.where(SessionRow.name == f.name)
    if f.project_id is not None:
        query = query.where(SessionRow.project_id == f.project_id)
    if f.user_id is not None:
        query = query.where(SessionRow.user_id == f.user_id)
    if f.access_key:
        query = query.where(SessionRow.access_key == f.access_key)
    if f.scaling_group:
        query = query.where(SessionRow.scaling_group == f.scaling_group)
    if f.agent_id:
        on_agent = select(KernelRow.session_id).where(KernelRow.agent_id == f.agent_id)
        query = query.where(SessionRow.id.in_(on_agent))
    if f.created_after is not None:
        query = query.where(SessionRow.created_at >= f.created_after)
    if f.created_before is not None:
        query = query.where(SessionRow.created_at < f.created_before)
    if after is not None:
        created, ident = _parse_cursor(after)
        query = query.where(
            (SessionRow.created_at < created)
            | ((SessionRow.created_at == created) & (SessionRow.id < ident))
        )
    order = (SessionRow.created_at.desc(), SessionRow.id.desc())
    rows = list((await db.execute(query.order_by(*order).limit(page_size + 1))).scalars())
    next_token = ""
    if len(rows) > page_size:
        last = rows[page_size - 1]
        next_token = encode_token(f"{last.created_at.isoformat()}|{last.id}", query_key)
    rows = rows[:page_size]
    kernels: dict[uuid.UUID, list[KernelRow]] = {r.id: [] for r in rows}
    if rows:
        kq = select(KernelRow).where(KernelRow.session_id.in_(list(kernels)))
        for kernel in (await db.execute(kq)).scalars():
            kernels[kernel.session_id].append(kernel)
    out = []
    for row in rows:
        ks = sorted(kernels[row.id], key=lambda k: (k.cluster_role != "main", k.cluster_idx))
        out.append(LoadedSession(row, ks))
    return out, next_token


def _parse_cursor(value: str) -> tuple[datetime, uuid.UUID]:
    created, _, ident = value.partition("|")
    try:
        return datetime.fromisoformat(created), uuid.UUID(ident)
    except ValueError as exc:
        raise InvalidArgument(
            [FieldViolation("page_token", "is not a token from this list")],
            reason="INVALID_PAGE_TOKEN",
        ) from exc


# --- proto conversion -------------------------------------------------------------


def _slots(value: dict[str, str]) -> types_pb2.ResourceSlots:
    return types_pb2.ResourceSlots(slots=value)


def session_history(row: SessionRow) -> list[session_pb2.SessionStatusTransition]:
    return [
        session_pb2.SessionStatusTransition(
            status=names.session_status_value(h.get("status", "")),  # type: ignore[arg-type]
            time=timestamp(datetime.fromisoformat(h["time"])),
            reason=names.reason_value(h.get("reason", "")),  # type: ignore[arg-type]
            message=h.get("message", ""),
        )
        for h in row.status_history
    ]


def kernel_history(row: KernelRow) -> list[session_pb2.KernelStatusTransition]:
    return [
        session_pb2.KernelStatusTransition(
            status=names.kernel_status_value(h.get("status", "")),  # type: ignore[arg-type]
            time=timestamp(datetime.fromisoformat(h["time"])),
            reason=names.reason_value(h.get("reason", "")),  # type: ignore[arg-type]
            message=h.get("message", ""),
        )
        for h in row.status_history
    ]


def _protocol(raw: Any) -> int:
    """Stored as the enum name in lower case ("http"), as the agent registry writes it."""
    name = "APP_PROTOCOL_" + str(raw or "unspecified").upper()
    return dict(common_session_pb2.AppProtocol.items()).get(name, 0)


def service_ports_to_proto(raw: Sequence[Any]) -> list[common_session_pb2.ServicePort]:
    out = []
    for item in raw:
        if not isinstance(item, dict):
            continue
        out.append(
            common_session_pb2.ServicePort(
                name=str(item.get("name", "")),
                protocol=_protocol(item.get("protocol")),  # type: ignore[arg-type]
                container_ports=[int(p) for p in item.get("container_ports", [])],
                host_ports=[int(p) for p in item.get("host_ports", [])],
                is_inference=bool(item.get("is_inference", False)),
            )
        )
    return out


def kernel_to_proto(row: KernelRow, *, with_history: bool) -> session_pb2.Kernel:
    msg = session_pb2.Kernel(
        id=str(row.id),
        session_id=str(row.session_id),
        cluster_role=row.cluster_role,
        cluster_idx=row.cluster_idx,
        local_rank=row.local_rank,
        cluster_hostname=row.cluster_hostname,
        status=names.kernel_status_value(row.status),  # type: ignore[arg-type]
        status_reason=names.reason_value(row.status_reason),  # type: ignore[arg-type]
        status_message=row.status_info,
        status_changed_at=timestamp(row.status_changed_at),
        agent_id=row.agent_id or "",
        container_id=row.container_id or "",
        image=row.image,
        architecture=row.architecture,
        requested_slots=_slots(row.requested_slots),
        occupied_slots=_slots(row.occupied_slots),
        service_ports=service_ports_to_proto(row.service_ports),
        created_at=timestamp(row.created_at),
        started_at=timestamp(row.started_at),
        terminated_at=timestamp(row.terminated_at),
    )
    if row.exit_code is not None:
        msg.exit_code = row.exit_code
    if with_history:
        msg.status_history.extend(kernel_history(row))
    return msg


def _diagnostics(raw: Sequence[Any]) -> list[session_pb2.SchedulingDiagnostic]:
    out = []
    for item in raw:
        check = session_pb2.SchedulingCheck.Value("SCHEDULING_CHECK_" + item.get("check", ""))
        out.append(
            session_pb2.SchedulingDiagnostic(
                check=check,
                message=item.get("message", ""),
                shortfalls=[
                    session_pb2.SlotShortfall(
                        slot=s["slot"], requested=s["requested"], available=s["available"]
                    )
                    for s in item.get("shortfalls", [])
                ],
                agent_id=item.get("agent_id") or "",
                checked_at=timestamp(datetime.fromisoformat(item["checked_at"]))
                if item.get("checked_at")
                else None,
            )
        )
    return out


def session_to_proto(loaded: LoadedSession, *, detail: bool) -> session_pb2.Session:
    """`detail`: GetSession's view (histories and scheduling diagnostics)."""
    row = loaded.session
    opts = row.resource_opts or {}
    msg = session_pb2.Session(
        id=str(row.id),
        name=row.name,
        type=names.session_type_value(row.session_type),  # type: ignore[arg-type]
        status=names.session_status_value(row.status),  # type: ignore[arg-type]
        status_reason=names.reason_value(row.status_reason),  # type: ignore[arg-type]
        status_message=row.status_info,
        status_changed_at=timestamp(row.status_changed_at),
        scheduling_attempts=row.scheduling_attempts,
        result=names.result_value(row.result),  # type: ignore[arg-type]
        image=row.image,
        architecture=row.architecture,
        cluster_mode=names.cluster_mode_value(row.cluster_mode),  # type: ignore[arg-type]
        cluster_size=row.cluster_size,
        requested_slots=_slots(row.requested_slots),
        occupied_slots=_slots(row.occupied_slots),
        resource_opts=common_session_pb2.ResourceOptions(
            shmem_bytes=int(opts.get("shmem_bytes", 0))
        ),
        environ=row.environ,
        startup_command=row.startup_command,
        priority=row.priority,
        is_preemptible=row.is_preemptible,
        starts_at=timestamp(row.starts_at),
        dependencies=list(row.dependencies),
        callback_url=row.callback_url,
        scaling_group=row.scaling_group,
        domain_name=row.domain_name,
        project_id=str(row.project_id),
        user_id=str(row.user_id),
        owner_access_key=row.access_key,
        tag=row.tag,
        agent_ids=list(row.agent_ids),
        kernels=[kernel_to_proto(k, with_history=detail) for k in loaded.kernels],
        created_at=timestamp(row.created_at),
        started_at=timestamp(row.started_at),
        terminated_at=timestamp(row.terminated_at),
    )
    if "allow_fractional_resource_fragmentation" in opts:
        msg.resource_opts.allow_fractional_resource_fragmentation = bool(
            opts["allow_fractional_resource_fragmentation"]
        )
    if row.batch_timeout:
        msg.batch_timeout.CopyFrom(Duration(seconds=row.batch_timeout))
    if row.exit_code is not None:
        msg.exit_code = row.exit_code
    if detail:
        msg.status_history.extend(session_history(row))
        if row.status == "PENDING":
            msg.scheduling_diagnostics.extend(_diagnostics(row.scheduling_diagnostics))
    return msg


def status_history_to_proto(loaded: LoadedSession) -> session_pb2.GetStatusHistoryResponse:
    return session_pb2.GetStatusHistoryResponse(
        session_history=session_history(loaded.session),
        kernels=[
            session_pb2.KernelStatusHistory(
                kernel_id=str(k.id),
                cluster_role=k.cluster_role,
                cluster_idx=k.cluster_idx,
                history=kernel_history(k),
            )
            for k in loaded.kernels
        ],
    )
