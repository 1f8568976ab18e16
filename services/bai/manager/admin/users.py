"""User administration: create, read, list, update, soft delete and purge.

Also holds the small helpers the keypair and project modules share:
reference checks, unique-violation mapping and the set of dead session states.
"""

from __future__ import annotations

import uuid
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import Any

from sqlalchemy import delete, exists, func, select, true, update
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncSession

from bai.common.errors import AlreadyExists, FailedPrecondition, NotFound, PermissionDenied
from bai.common.signing import new_keypair
from bai.manager.auth.access import (
    can_see_user,
    may_change_role_of,
    may_grant_role,
    require_create_scope,
    require_user_manageable,
    require_writer,
)
from bai.manager.auth.principal import Principal, Role
from bai.manager.db.base import Base
from bai.manager.db.compute import SessionRow
from bai.manager.db.identity import DomainRow, KeypairRow, ProjectMemberRow, ProjectRow, UserRow
from bai.manager.db.policies import KeypairResourcePolicyRow, UserResourcePolicyRow
from bai.manager.db.storage import VFolderRow
from bai.manager.paging import decode_token, encode_token

ACTIVE, INACTIVE, DELETED = "active", "inactive", "deleted"
BEFORE_VERIFICATION = "before-verification"
# Sessions in these states hold nothing and may be removed with their owner.
DEAD_SESSION_STATUSES = ("TERMINATED", "CANCELLED")
DEFAULT_RATE_LIMIT = 30000
UPDATABLE = (
    "username",
    "email",
    "full_name",
    "description",
    "role",
    "status",
    "need_password_change",
    "resource_policy",
    "allowed_client_ip",
    "sudo_session_enabled",
    "container_uid",
    "container_main_gid",
    "container_gids",
)


# --- helpers shared with keypairs.py and projects.py -------------------------


def reference_not_found(what: str) -> FailedPrecondition:
    return FailedPrecondition(
        f"{what} does not exist", reason="REFERENCE_NOT_FOUND", metadata={"reference": what}
    )


async def require_reference(db: AsyncSession, model: type[Base], name: str, what: str) -> None:
    """The named row (domain, policy) must exist."""
    if await db.get(model, name) is None:
        raise reference_not_found(what)


async def flush_or_conflict(db: AsyncSession, what: str) -> None:
    """Flush; a unique violation becomes ALREADY_EXISTS, a dangling reference
    REFERENCE_NOT_FOUND (both can only happen in a race with another writer)."""
    try:
        await db.flush()
    except IntegrityError as exc:
        state = getattr(exc.orig, "sqlstate", None) or getattr(exc.orig, "pgcode", None)
        if state == "23505":
            raise AlreadyExists(f"{what} already exists") from exc
        if state == "23503":
            raise reference_not_found("a referenced object") from exc
        raise FailedPrecondition(f"{what} conflicts with the current state") from exc


def live_sessions(*where: Any) -> Any:
    return exists().where(SessionRow.status.not_in(DEAD_SESSION_STATUSES), *where)


async def delete_dead_sessions(db: AsyncSession, *where: Any) -> None:
    await db.execute(delete(SessionRow).where(SessionRow.status.in_(DEAD_SESSION_STATUSES), *where))


async def memberships(
    db: AsyncSession, user_ids: Iterable[uuid.UUID]
) -> dict[uuid.UUID, list[uuid.UUID]]:
    ids = list(user_ids)
    found: dict[uuid.UUID, list[uuid.UUID]] = {uid: [] for uid in ids}
    if ids:
        query = (
            select(ProjectMemberRow.user_id, ProjectMemberRow.project_id)
            .where(ProjectMemberRow.user_id.in_(ids))
            .order_by(ProjectMemberRow.project_id)
        )
        for user_id, project_id in (await db.execute(query)).all():
            found[user_id].append(project_id)
    return found


# --- users -------------------------------------------------------------------


@dataclass
class UserView:
    row: UserRow
    project_ids: list[uuid.UUID]


@dataclass
class CreatedUser:
    user: UserView
    keypair: KeypairRow | None


async def _require_unique(
    db: AsyncSession, username: str | None, email: str | None, exclude: uuid.UUID | None = None
) -> None:
    checks = []
    if username is not None:
        checks.append(("username", UserRow.username == username))
    if email is not None:
        checks.append(("email", func.lower(UserRow.email) == email.lower()))
    for field, clause in checks:
        others = UserRow.id != exclude if exclude is not None else true()
        if await db.scalar(select(exists().where(clause, others))):
            raise AlreadyExists(f"{field} is taken", metadata={"field": field})


async def create_user(
    db: AsyncSession,
    p: Principal,
    values: dict[str, Any],
    project_ids: Sequence[uuid.UUID],
    create_keypair: bool,
) -> CreatedUser:
    domain = values["domain_name"]
    require_create_scope(p, domain)
    if not may_grant_role(p, Role(values["role"])):
        raise PermissionDenied("only a superadmin may create a superadmin", reason="ROLE_FORBIDDEN")
    await require_reference(db, DomainRow, domain, "domain")
    await require_reference(db, UserResourcePolicyRow, values["resource_policy"], "resource_policy")
    if create_keypair:
        await require_reference(db, KeypairResourcePolicyRow, "default", "keypair resource policy")
    if project_ids:
        found = set(
            (
                await db.execute(
                    select(ProjectRow.id).where(
                        ProjectRow.id.in_(project_ids), ProjectRow.domain_name == domain
                    )
                )
            ).scalars()
        )
        if len(found) != len(set(project_ids)):
            raise reference_not_found("project")
    await _require_unique(db, values["username"], values["email"])
    row = UserRow(**values)
    db.add(row)
    await flush_or_conflict(db, "user")
    for project_id in project_ids:
        db.add(ProjectMemberRow(project_id=project_id, user_id=row.id))
    keypair: KeypairRow | None = None
    if create_keypair:
        access_key, secret_key = new_keypair()
        keypair = KeypairRow(
            access_key=access_key,
            secret_key=secret_key,
            user_id=row.id,
            is_admin=row.role in (Role.SUPERADMIN, Role.ADMIN),
            resource_policy="default",
            rate_limit=DEFAULT_RATE_LIMIT,
        )
        db.add(keypair)
    await flush_or_conflict(db, "user")
    await db.refresh(row)
    if keypair is not None:
        await db.refresh(keypair)
    return CreatedUser(UserView(row, sorted(set(project_ids))), keypair)


async def _visible_user(db: AsyncSession, p: Principal, user_id: uuid.UUID, lock: bool) -> UserRow:
    row = await db.get(UserRow, user_id, with_for_update=lock)
    if row is None or not can_see_user(p, row.id, row.domain_name):
        raise NotFound("user not found")
    return row


async def get_user(db: AsyncSession, p: Principal, user_id: uuid.UUID) -> UserView:
    row = await _visible_user(db, p, user_id, lock=False)
    return UserView(row, (await memberships(db, [row.id]))[row.id])


@dataclass(frozen=True)
class UserFilter:
    domain_name: str = ""
    project_id: uuid.UUID | None = None
    status: str = ""  # empty: every status but DELETED
    role: str = ""


async def list_users(
    db: AsyncSession, p: Principal, f: UserFilter, page_size: int, page_token: str
) -> tuple[list[UserView], str]:
    if p.role is Role.USER:
        raise PermissionDenied("users cannot list users", reason="ROLE_FORBIDDEN")
    query_key = {"list": "users", "d": f.domain_name, "p": f.project_id, "s": f.status, "r": f.role}
    after = decode_token(page_token, query_key)
    query = select(UserRow).order_by(UserRow.username).limit(page_size + 1)
    if not p.is_superadmin:
        query = query.where(UserRow.domain_name == p.domain_name)
    if f.domain_name:
        query = query.where(UserRow.domain_name == f.domain_name)
    if f.project_id is not None:
        query = query.where(
            exists().where(
                ProjectMemberRow.user_id == UserRow.id, ProjectMemberRow.project_id == f.project_id
            )
        )
    query = query.where(UserRow.status == f.status if f.status else UserRow.status != DELETED)
    if f.role:
        query = query.where(UserRow.role == f.role)
    if after is not None:
        query = query.where(UserRow.username > after)
    rows = list((await db.execute(query)).scalars())
    token = encode_token(rows[page_size - 1].username, query_key) if len(rows) > page_size else ""
    rows = rows[:page_size]
    members = await memberships(db, [r.id for r in rows])
    return [UserView(r, members[r.id]) for r in rows], token


async def update_user(
    db: AsyncSession,
    p: Principal,
    user_id: uuid.UUID,
    changes: dict[str, Any],
    password_hash: str | None,
) -> UserView:
    require_writer(p)
    row = await _visible_user(db, p, user_id, lock=True)
    require_user_manageable(p, row.domain_name, Role(row.role), "user")
    if row.status == DELETED:
        raise FailedPrecondition("a deleted user cannot be updated", reason="INVALID_STATE")
    if "role" in changes and not may_grant_role(p, Role(changes["role"])):
        raise PermissionDenied("only a superadmin may grant superadmin", reason="ROLE_FORBIDDEN")
    if changes.get("role", row.role) != row.role and not may_change_role_of(p, row.id):
        raise PermissionDenied("you cannot change your own role", reason="ROLE_FORBIDDEN")
    if "resource_policy" in changes:
        await require_reference(
            db, UserResourcePolicyRow, changes["resource_policy"], "resource_policy"
        )
    await _require_unique(db, changes.get("username"), changes.get("email"), exclude=row.id)
    for key, value in changes.items():
        setattr(row, key, value)
    if password_hash is not None:
        row.password_hash = password_hash
    row.modified_at = func.now()
    await flush_or_conflict(db, "user")
    await db.refresh(row)
    return UserView(row, (await memberships(db, [row.id]))[row.id])


async def delete_user(db: AsyncSession, p: Principal, user_id: uuid.UUID, purge: bool) -> str:
    """Returns the user's domain (for the audit log)."""
    require_writer(p)
    if purge and not p.is_superadmin:
        raise PermissionDenied("only a superadmin may purge users", reason="ROLE_FORBIDDEN")
    row = await _visible_user(db, p, user_id, lock=True)
    require_user_manageable(p, row.domain_name, Role(row.role), "user")
    if row.id == p.user_id:
        raise FailedPrecondition("you cannot delete yourself", reason="INVALID_STATE")
    if not purge:
        if row.status != DELETED:
            row.status = DELETED
            row.modified_at = func.now()
        await db.execute(
            update(KeypairRow).where(KeypairRow.user_id == row.id).values(is_active=False)
        )
        return row.domain_name
    busy = await db.scalar(
        select(
            live_sessions(SessionRow.user_id == row.id)
            | exists().where(VFolderRow.user_id == row.id)
        )
    )
    if busy:
        raise FailedPrecondition("the user has live sessions or owns vfolders", reason="IN_USE")
    await delete_dead_sessions(db, SessionRow.user_id == row.id)
    await db.delete(row)
    try:
        await db.flush()
    except IntegrityError as exc:
        raise FailedPrecondition("the user is still referenced", reason="IN_USE") from exc
    return row.domain_name
