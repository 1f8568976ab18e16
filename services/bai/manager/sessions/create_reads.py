"""The statements CreateSession runs on every call, built once per shape.

A statement built once keeps its SQLAlchemy cache key, so each call finds the
compiled form at once; the reads use the tables' Core columns, so rows come
back without the ORM's loading machinery, and the new rows go in as Core
inserts. The checks on what these return are in create.py.
"""

from __future__ import annotations

import functools
import uuid
from dataclasses import dataclass
from typing import Any, cast

from sqlalchemy import (
    Executable,
    Numeric,
    Row,
    ScalarSelect,
    String,
    Table,
    bindparam,
    exists,
    func,
    insert,
    literal,
    null,
    select,
    true,
)
from sqlalchemy.dialects.postgresql import JSONB
from sqlalchemy.ext.asyncio import AsyncSession
from sqlalchemy.sql.schema import CallableColumnDefault, ScalarElementColumnDefault

from bai.common.slots import Slots
from bai.manager.auth.principal import Principal, Role
from bai.manager.db.base import Base
from bai.manager.db.compute import AgentRow, KernelRow, SessionRow
from bai.manager.db.identity import KeypairRow, ProjectMemberRow, ProjectRow, UserRow
from bai.manager.db.policies import KeypairResourcePolicyRow
from bai.manager.sessions import lifecycle, resources


def _table(row: type[Base]) -> Table:
    return cast(Table, row.__table__)


_USERS = _table(UserRow)
_KEYPAIRS = _table(KeypairRow)
_POLICIES = _table(KeypairResourcePolicyRow)
_PROJECTS = _table(ProjectRow)
_MEMBERS = _table(ProjectMemberRow)
_SESSIONS = _table(SessionRow)
_KERNELS = _table(KernelRow)
_AGENTS = _table(AgentRow)


@dataclass(frozen=True)
class Owner:
    """The session's owner: the user, the keypair and its resource policy's limits."""

    user_id: uuid.UUID
    username: str
    email: str
    role: str
    domain_name: str
    access_key: str
    max_containers_per_session: int
    max_priority: int
    max_pending_session_count: int
    max_pending_session_resource_slots: dict[str, str]

    @classmethod
    def of(cls, row: Row[Any]) -> Owner:
        """From a row of owner_row()."""
        return cls(
            row.user_id,
            row.username,
            row.email,
            row.role,
            row.domain_name,
            row.access_key,
            row.max_containers_per_session,
            row.max_priority,
            row.max_pending_session_count,
            row.max_pending_session_resource_slots,
        )

    def principal(self, project_id: uuid.UUID) -> Principal:
        return Principal(
            user_id=self.user_id,
            username=self.username,
            email=self.email,
            role=Role(self.role),
            domain_name=self.domain_name,
            access_key=self.access_key,
            project_ids=frozenset({project_id}),
        )

    @property
    def limits_pending(self) -> bool:
        return bool(self.max_pending_session_count or self.max_pending_session_resource_slots)


def _member_project(project_given: bool) -> ScalarSelect[uuid.UUID]:
    """The owner's active project in their domain: the one asked for (:project_id),
    else "default" or the oldest (correlated to the owner's user row)."""
    projects, members, users = _PROJECTS.c, _MEMBERS.c, _USERS.c
    query = (
        select(projects.id)
        .join(_MEMBERS, members.project_id == projects.id)
        .where(
            members.user_id == users.id,
            projects.domain_name == users.domain_name,
            projects.is_active,
        )
    )
    if project_given:
        query = query.where(projects.id == bindparam("project_id"))
    else:
        query = query.order_by((projects.name != "default"), projects.created_at)
    return query.limit(1).correlate(_USERS).scalar_subquery()


@functools.cache
def _owner_query(by_access_key: bool, project_given: bool) -> Executable:
    keypairs, users, policies = _KEYPAIRS.c, _USERS.c, _POLICIES.c
    query = (
        select(
            keypairs.access_key,
            keypairs.is_active.label("keypair_active"),
            users.id.label("user_id"),
            users.username,
            users.email,
            users.role,
            users.domain_name,
            users.status.label("user_status"),
            policies.name.label("policy_name"),
            policies.max_containers_per_session,
            policies.max_priority,
            policies.max_pending_session_count,
            policies.max_pending_session_resource_slots,
            _member_project(project_given).label("project_id"),
        )
        .select_from(_KEYPAIRS)
        .join(_USERS, users.id == keypairs.user_id)
        .outerjoin(_POLICIES, policies.name == keypairs.resource_policy)
    )
    if by_access_key:
        query = query.where(keypairs.access_key == bindparam("access_key"))
    else:
        # Bearer-token callers: their oldest active keypair owns the session.
        query = query.where(keypairs.user_id == bindparam("user_id"), keypairs.is_active)
        query = query.order_by(keypairs.created_at)
    return query.limit(1)


async def owner_row(
    db: AsyncSession, access_key: str, user_id: uuid.UUID, project_id: uuid.UUID | None
) -> Row[Any] | None:
    """The keypair `access_key` (else `user_id`'s oldest active one) with its user, its
    policy (policy_name None: missing) and the session's project (project_id None: no
    such project of which the user is a member), in one statement."""
    query = _owner_query(bool(access_key), project_id is not None)
    params = {"access_key": access_key, "user_id": user_id, "project_id": project_id}
    return (await db.execute(query, params)).first()


_LOCK_OWNER = select(func.pg_advisory_xact_lock(func.hashtext(bindparam("key", type_=String))))


async def lock_owner(db: AsyncSession, owner: Owner) -> None:
    """Until the transaction ends, concurrent creates of this owner wait here."""
    await db.execute(_LOCK_OWNER, {"key": owner.access_key})


@dataclass(frozen=True)
class PendingUse:
    """The owner's PENDING sessions: how many, and what they ask for in total."""

    count: int
    slots: Slots


@dataclass(frozen=True)
class OwnerSessions:
    """What the owner's other sessions say, read under the advisory lock."""

    replay_id: uuid.UUID | None
    name_taken: bool
    # None: the policy sets no pending limit (so it was not read).
    pending: PendingUse | None


@functools.cache
def _owner_sessions_query(replay: bool, pending: bool) -> Executable:
    s = _SESSIONS.c
    replay_id: Any = null()
    if replay:
        replay_id = select(s.id).where(s.request_id == bindparam("request_key"))
        replay_id = replay_id.scalar_subquery()
    name_taken = exists().where(
        s.access_key == bindparam("access_key"),
        s.name == bindparam("name"),
        s.status.not_in(lifecycle.SESSION_TERMINAL),
    )
    pending_count: Any = null()
    pending_slots: Any = null()
    if pending:
        waiting = (s.access_key == bindparam("access_key"), s.status == "PENDING")
        pending_count = select(func.count()).where(*waiting).scalar_subquery()
        # Summed in the database: the owner may have thousands waiting.
        each = func.jsonb_each_text(s.requested_slots).table_valued("key", "value")
        per_slot = (
            select(each.c.key, func.sum(each.c.value.cast(Numeric)).label("total"))
            .select_from(_SESSIONS)
            .join(each, true())
            .where(*waiting)
            .group_by(each.c.key)
            .subquery()
        )
        pending_slots = select(
            func.coalesce(
                func.jsonb_object_agg(per_slot.c.key, per_slot.c.total.cast(String)),
                literal({}, JSONB),
            )
        ).scalar_subquery()
    return select(replay_id, name_taken, pending_count, pending_slots)


async def owner_sessions(
    db: AsyncSession, owner: Owner, name: str, request_key: str | None
) -> OwnerSessions:
    """request_id replay, live name and pending sessions in one statement (run it after
    lock_owner: its snapshot then sees every earlier create of the owner)."""
    limited = owner.limits_pending
    query = _owner_sessions_query(request_key is not None, limited)
    params = {"access_key": owner.access_key, "name": name, "request_key": request_key}
    row = (await db.execute(query, params)).one()
    pending = PendingUse(int(row[2]), Slots.from_wire(row[3])) if limited else None
    return OwnerSessions(row[0], bool(row[1]), pending)


_GROUP_AGENTS = select(
    _AGENTS.c.id,
    _AGENTS.c.architecture,
    _AGENTS.c.available_slots,
    _AGENTS.c.slot_types,
    _AGENTS.c.status,
    _AGENTS.c.schedulable,
).where(
    _AGENTS.c.scaling_group == bindparam("group"), _AGENTS.c.status.in_(("ALIVE", "RESTARTING"))
)


async def group_agents(
    db: AsyncSession, group: str
) -> tuple[set[str], list[resources.AgentCapacity]]:
    """The capacity of the group's schedulable ALIVE agents, and every slot type its
    connected agents know (only the columns needed: agent rows are wide)."""
    rows = (await db.execute(_GROUP_AGENTS, {"group": group})).all()
    known = set().union(*(row.slot_types.keys() for row in rows)) if rows else set()
    capacity = [
        resources.AgentCapacity(r.id, r.architecture, Slots.from_wire(r.available_slots))
        for r in rows
        if r.status == "ALIVE" and r.schedulable
    ]
    return known, capacity


_INSERT_SESSION = insert(_SESSIONS)
_INSERT_KERNEL = insert(_KERNELS)


def _stored(row: SessionRow | KernelRow) -> dict[str, Any]:
    """The values to insert; unset columns get the model's Python defaults in memory
    too (as a flush would), so the row returned is the row stored."""
    values = {}
    for attr in type(row).__mapper__.column_attrs:
        default = attr.columns[0].default
        if attr.key not in row.__dict__:
            if isinstance(default, CallableColumnDefault):
                setattr(row, attr.key, cast(Any, default.arg)(None))
            elif isinstance(default, ScalarElementColumnDefault):
                setattr(row, attr.key, default.arg)
        if attr.key in row.__dict__:
            values[attr.key] = row.__dict__[attr.key]
    return values


async def insert_rows(db: AsyncSession, session: SessionRow, kernels: list[KernelRow]) -> None:
    """Insert transient rows, the session first (the kernels reference it); they stay
    out of `db`, as complete as a flush would leave them."""
    await db.execute(_INSERT_SESSION, _stored(session))
    await db.execute(_INSERT_KERNEL, [_stored(k) for k in kernels])
