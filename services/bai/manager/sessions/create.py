"""CreateSession: enqueue-time checks and the PENDING session with its kernel rows.

Everything runs in the caller's transaction under an advisory lock on the
owner's access key, so that concurrent creates of one owner see each other
(name uniqueness, pending-session limits, request_id replays). The statements
run on every call are in create_reads.py; the checks on what they return, in
their order, are here.
"""

from __future__ import annotations

import hashlib
import secrets
import uuid
from dataclasses import dataclass
from datetime import datetime
from decimal import Decimal
from typing import Any

from google.protobuf.json_format import MessageToDict
from sqlalchemy import or_, select
from sqlalchemy.ext.asyncio import AsyncSession

from bai.api.manager.v1 import session_pb2
from bai.common.errors import (
    AlreadyExists,
    FailedPrecondition,
    FieldViolation,
    InvalidArgument,
    PermissionDenied,
    ResourceExhausted,
)
from bai.common.slots import Slots
from bai.manager.admin.scaling_groups import list_allowed
from bai.manager.agents.image_catalog import require_usable
from bai.manager.agents.images import resolve_image
from bai.manager.auth.principal import Principal, Role
from bai.manager.db.compute import AgentRow, KernelRow, SessionRow
from bai.manager.db.policies import ScalingGroupRow
from bai.manager.sessions import create_reads as reads
from bai.manager.sessions import lifecycle, resources, transitions
from bai.manager.sessions.create_reads import Owner, PendingUse
from bai.manager.sessions.queries import LoadedSession, load
from bai.manager.vfolders.mounts import resolve_mounts
from bai.manager.vfolders.storage_client import StorageProxies

DEFAULT_SESSION_TYPES = ("interactive", "batch")


@dataclass(frozen=True)
class NewSession:
    """A syntactically valid CreateSessionRequest (see api/session_requests.py)."""

    name: str
    image: str
    architecture: str
    session_type: str
    cluster_mode: str
    cluster_size: int
    slots: dict[str, Decimal]
    resource_opts: dict[str, Any]
    environ: dict[str, str]
    startup_command: str
    bootstrap_script: str
    batch_timeout: int
    scaling_group: str
    project_id: uuid.UUID | None
    priority: int | None
    starts_at: datetime | None
    dependencies: tuple[str, ...]
    callback_url: str
    preopen_ports: tuple[int, ...]
    agent_list: tuple[str, ...]
    owner_access_key: str
    request_id: str
    is_preemptible: bool | None
    tag: str
    # Digest of the whole request: a request_id reused with other parameters is refused.
    digest: str
    # vfolders to mount, as the client named them (checked by resolve_mounts).
    mounts: tuple[session_pb2.SessionMountRequest, ...] = ()


def _missing(what: str) -> FailedPrecondition:
    return FailedPrecondition(f"{what} does not exist", reason="REFERENCE_NOT_FOUND")


def _is_admin(p: Principal) -> bool:
    return p.role in (Role.SUPERADMIN, Role.ADMIN)


async def _owner(
    db: AsyncSession, p: Principal, spec: NewSession
) -> tuple[Owner, uuid.UUID | None]:
    """The owner and the project the session goes to (None: no such project); the
    project is checked later, after the policy's limits."""
    if spec.owner_access_key and not _is_admin(p):
        raise PermissionDenied(
            "only admins create sessions for someone else", reason="ROLE_FORBIDDEN"
        )
    access_key = spec.owner_access_key or p.access_key
    row = await reads.owner_row(db, access_key, p.user_id, spec.project_id)
    if row is None:
        raise _missing("owner keypair")
    if spec.owner_access_key:
        if not p.is_superadmin and row.domain_name != p.domain_name:
            raise _missing("owner keypair")
        if not row.keypair_active or row.user_status != "active":
            raise FailedPrecondition("the owner's keypair is inactive", reason="INVALID_STATE")
    if row.policy_name is None:
        raise _missing("keypair resource policy")
    return Owner.of(row), row.project_id


async def _scaling_group(
    db: AsyncSession, owner: Owner, project_id: uuid.UUID, wanted: str
) -> ScalingGroupRow:
    allowed = list(await list_allowed(db, owner.principal(project_id), project_id))
    if wanted:
        for group in allowed:
            if group.name == wanted:
                return group
    elif allowed:
        return sorted(allowed, key=lambda g: (not g.is_default, g.name))[0]
    name = wanted or "(default)"
    raise PermissionDenied(
        f"scaling group {name} is not allowed for this owner and project",
        reason="SCALING_GROUP_NOT_ALLOWED",
        metadata={"scaling_group": wanted},
    )


def _check_type(p: Principal, group: ScalingGroupRow, session_type: str) -> None:
    """SYSTEM sessions (SFTP and the like) are the platform's: admins only, any group."""
    allowed = group.scheduler_opts.get("allowed_session_types", list(DEFAULT_SESSION_TYPES))
    if session_type == "system":
        allowed = ["system"] if _is_admin(p) else []
    if session_type not in allowed:
        raise FailedPrecondition(
            f"scaling group {group.name} does not allow {session_type} sessions",
            reason="SESSION_TYPE_NOT_ALLOWED",
            metadata={"session_type": session_type, "scaling_group": group.name},
        )


def _pending_limits(owner: Owner, pending: PendingUse | None, asked: Slots) -> None:
    if pending is None:
        return
    most = owner.max_pending_session_count
    if most and pending.count >= most:
        raise ResourceExhausted(
            f"at most {most} sessions may wait at once", reason="QUOTA_EXCEEDED"
        )
    used = pending.slots + asked
    slot = resources.exceeds(owner.max_pending_session_resource_slots, used)
    if slot is not None:
        raise ResourceExhausted(
            f"pending sessions would ask for more {slot} than the keypair policy allows",
            reason="QUOTA_EXCEEDED",
            metadata={"slot": slot},
        )


async def _dependencies(db: AsyncSession, owner: Owner, refs: tuple[str, ...]) -> list[str]:
    ids: list[str] = []
    for index, ref in enumerate(refs):
        condition = SessionRow.name == ref
        try:
            condition = or_(condition, SessionRow.id == uuid.UUID(ref))
        except ValueError:
            pass
        found = await db.scalar(
            select(SessionRow.id)
            .where(SessionRow.user_id == owner.user_id, condition)
            .order_by(SessionRow.created_at.desc())
            .limit(1)
        )
        if found is None:
            raise FailedPrecondition(
                f"dependencies[{index}] names no session of the owner",
                reason="REFERENCE_NOT_FOUND",
            )
        ids.append(str(found))
    return ids


async def _agent_list(db: AsyncSession, p: Principal, agent_ids: tuple[str, ...]) -> list[str]:
    if not agent_ids:
        return []
    if not _is_admin(p):
        raise PermissionDenied("only admins designate agents", reason="ROLE_FORBIDDEN")
    found = set((await db.execute(select(AgentRow.id).where(AgentRow.id.in_(agent_ids)))).scalars())
    missing = [a for a in agent_ids if a not in found]
    if missing:
        raise _missing(f"agent {missing[0]}")
    return list(agent_ids)


async def _mounts(
    db: AsyncSession, owner: Principal, spec: NewSession, storage: StorageProxies | None
) -> list[dict[str, Any]]:
    """The resolved mounts as stored on the session (dicts keyed by proto field names:
    dispatch and the vfolder in-use checks read them)."""
    if not spec.mounts:
        return []
    if storage is None:
        raise FailedPrecondition("no storage proxy is configured", reason="INVALID_STATE")
    resolved = await resolve_mounts(db, owner, spec.mounts, storage)
    return [MessageToDict(m, preserving_proto_field_name=True) for m in resolved]


def request_key(p: Principal, request_id: str) -> str:
    """The stored request id: scoped to the caller, 64 hex characters."""
    return hashlib.sha256(f"{p.user_id}:{request_id}".encode()).hexdigest()


async def _replay(db: AsyncSession, session_id: uuid.UUID, spec: NewSession) -> LoadedSession:
    loaded = await load(db, session_id)
    assert loaded is not None
    if loaded.session.status_data.get("request_digest") != spec.digest:
        raise FailedPrecondition(
            "request_id was used with different parameters", reason="REQUEST_ID_CONFLICT"
        )
    return loaded


def _kernels(session: SessionRow, per_kernel: Slots, now: datetime) -> list[KernelRow]:
    return [
        KernelRow(
            id=uuid.uuid4(),
            session_id=session.id,
            cluster_role="main" if index == 0 else "sub",
            cluster_idx=1 if index == 0 else index,
            local_rank=0,
            cluster_hostname="main1" if index == 0 else f"sub{index}",
            image=session.image,
            architecture=session.architecture,
            status="PENDING",
            status_changed_at=now,
            status_history=[lifecycle.history_entry("PENDING", now)],
            requested_slots=per_kernel.to_wire(),
            occupied_slots={},
            created_at=now,
        )
        for index in range(session.cluster_size)
    ]


async def enqueue(
    db: AsyncSession,
    p: Principal,
    spec: NewSession,
    now: datetime,
    storage: StorageProxies | None = None,
) -> tuple[LoadedSession, transitions.PendingEvents]:
    """Check and insert a PENDING session; a request_id replay returns the earlier one.

    The new rows are returned as inserted (transient: not in `db`). `storage`
    resolves vfolder mounts (required when the spec has some)."""
    if p.role is Role.MONITOR:
        raise PermissionDenied("monitors cannot create sessions", reason="READ_ONLY_ROLE")
    owner, project_id = await _owner(db, p, spec)
    await reads.lock_owner(db, owner)
    name = spec.name or f"s-{secrets.token_hex(4)}"
    key = request_key(p, spec.request_id) if spec.request_id else None
    seen = await reads.owner_sessions(db, owner, name, key)
    if seen.replay_id is not None:
        return await _replay(db, seen.replay_id, spec), transitions.PendingEvents()
    if spec.cluster_size > max(owner.max_containers_per_session, 1):
        raise ResourceExhausted(
            f"at most {owner.max_containers_per_session} containers per session",
            reason="QUOTA_EXCEEDED",
        )
    priority = 10 if spec.priority is None else spec.priority
    if priority > owner.max_priority:
        raise InvalidArgument([FieldViolation("priority", f"must be at most {owner.max_priority}")])
    if project_id is None:
        raise _missing("project (of which the owner is a member)")
    image = await resolve_image(db, spec.image, spec.architecture)
    await require_usable(db, owner.principal(project_id), image)
    group = await _scaling_group(db, owner, project_id, spec.scaling_group)
    _check_type(p, group, spec.session_type)
    known, capacity = await reads.group_agents(db, group.name)
    per_kernel = resources.kernel_slots(spec.slots, image.labels, known)
    resources.require_some_capacity(
        per_kernel,
        spec.cluster_size,
        spec.cluster_mode == "single-node",
        image.architecture,
        capacity,
    )
    requested = per_kernel.scaled(spec.cluster_size)
    _pending_limits(owner, seen.pending, requested)
    if seen.name_taken:
        raise AlreadyExists(f"a live session named {name!r} already exists")
    dependencies = await _dependencies(db, owner, spec.dependencies)
    agent_list = await _agent_list(db, p, spec.agent_list)
    mounts = await _mounts(db, owner.principal(project_id), spec, storage)
    session = SessionRow(
        id=uuid.uuid4(),
        name=name,
        request_id=key,
        session_type=spec.session_type,
        cluster_mode=spec.cluster_mode,
        cluster_size=spec.cluster_size,
        domain_name=owner.domain_name,
        project_id=project_id,
        user_id=owner.user_id,
        access_key=owner.access_key,
        scaling_group=group.name,
        image=image.canonical,
        architecture=image.architecture,
        status="",
        status_data={"request_digest": spec.digest} if spec.request_id else {},
        status_history=[],
        requested_slots=requested.to_wire(),
        occupied_slots={},
        resource_opts=spec.resource_opts,
        environ=spec.environ,
        mounts=mounts,
        startup_command=spec.startup_command,
        bootstrap_script=spec.bootstrap_script,
        batch_timeout=spec.batch_timeout,
        priority=priority,
        is_preemptible=True if spec.is_preemptible is None else spec.is_preemptible,
        dependencies=dependencies,
        callback_url=spec.callback_url,
        preopen_ports=list(spec.preopen_ports),
        agent_list=agent_list,
        agent_ids=[],
        tag=spec.tag,
        starts_at=spec.starts_at,
        created_at=now,
    )
    # Sets status, its reason, info, time, history and transition_retries.
    pending = transitions.set_session_status(session, "PENDING", now)
    kernels = _kernels(session, per_kernel, now)
    await reads.insert_rows(db, session, kernels)
    return LoadedSession(session, kernels), pending
