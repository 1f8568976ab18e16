"""Project administration: create, read, list, update, delete, membership."""

from __future__ import annotations

import json
import uuid
from collections.abc import Sequence
from typing import Any

from sqlalchemy import delete, exists, func, select, tuple_
from sqlalchemy.dialects.postgresql import insert
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncSession

from bai.common.errors import (
    AlreadyExists,
    FailedPrecondition,
    FieldViolation,
    InvalidArgument,
    NotFound,
)
from bai.manager.admin.users import (
    DELETED,
    delete_dead_sessions,
    flush_or_conflict,
    live_sessions,
    reference_not_found,
    require_reference,
)
from bai.manager.auth.access import (
    can_read_domain_objects,
    can_read_project_of,
    require_create_scope,
    require_domain_visible,
    require_writer,
)
from bai.manager.auth.principal import Principal, Role
from bai.manager.db.compute import SessionRow
from bai.manager.db.identity import DomainRow, ProjectMemberRow, ProjectRow, UserRow
from bai.manager.db.policies import ProjectResourcePolicyRow
from bai.manager.db.storage import VFolderRow
from bai.manager.paging import decode_token, encode_token

UPDATABLE = (
    "name",
    "description",
    "is_active",
    "total_resource_slots",
    "allowed_vfolder_hosts",
    "resource_policy",
)


async def _require_name_free(
    db: AsyncSession, domain_name: str, name: str, exclude: uuid.UUID | None = None
) -> None:
    clause = exists().where(ProjectRow.domain_name == domain_name, ProjectRow.name == name)
    if exclude is not None:
        clause = clause.where(ProjectRow.id != exclude)
    if await db.scalar(select(clause)):
        raise AlreadyExists(f"project {name!r} already exists in domain {domain_name!r}")


async def create_project(db: AsyncSession, p: Principal, values: dict[str, Any]) -> ProjectRow:
    require_create_scope(p, values["domain_name"])
    await require_reference(db, DomainRow, values["domain_name"], "domain")
    await require_reference(
        db, ProjectResourcePolicyRow, values["resource_policy"], "resource_policy"
    )
    await _require_name_free(db, values["domain_name"], values["name"])
    row = ProjectRow(**values)
    db.add(row)
    await flush_or_conflict(db, "project")
    await db.refresh(row)
    return row


async def _visible(db: AsyncSession, p: Principal, project_id: uuid.UUID) -> ProjectRow:
    row = await db.get(ProjectRow, project_id)
    if row is None or not can_read_project_of(p, row.domain_name, row.id):
        raise NotFound("project not found")
    return row


async def _manageable(db: AsyncSession, p: Principal, project_id: uuid.UUID) -> ProjectRow:
    require_writer(p)
    row = await db.get(ProjectRow, project_id, with_for_update=True)
    if row is None:
        raise NotFound("project not found")
    require_domain_visible(p, row.domain_name, "project")
    return row


async def get_project(db: AsyncSession, p: Principal, project_id: uuid.UUID) -> ProjectRow:
    return await _visible(db, p, project_id)


def _bad_token() -> InvalidArgument:
    return InvalidArgument(
        [FieldViolation("page_token", "is not a token from this list")], reason="INVALID_PAGE_TOKEN"
    )


async def list_projects(
    db: AsyncSession, p: Principal, domain_name: str, page_size: int, page_token: str
) -> tuple[list[ProjectRow], str]:
    query_key = {"list": "projects", "d": domain_name}
    after = decode_token(page_token, query_key)
    order = (ProjectRow.domain_name, ProjectRow.name)
    query = select(ProjectRow).order_by(*order).limit(page_size + 1)
    if p.role is Role.USER:
        query = query.where(
            exists().where(
                ProjectMemberRow.project_id == ProjectRow.id, ProjectMemberRow.user_id == p.user_id
            )
        )
    elif not p.is_superadmin:
        query = query.where(ProjectRow.domain_name == p.domain_name)
    if domain_name:
        query = query.where(ProjectRow.domain_name == domain_name)
    if after is not None:
        try:
            last_domain, last_name = json.loads(after)
        except (ValueError, TypeError) as exc:
            raise _bad_token() from exc
        query = query.where(tuple_(*order) > tuple_(str(last_domain), str(last_name)))
    rows = list((await db.execute(query)).scalars())
    token = ""
    if len(rows) > page_size:
        last = rows[page_size - 1]
        token = encode_token(json.dumps([last.domain_name, last.name]), query_key)
    return rows[:page_size], token


async def update_project(
    db: AsyncSession, p: Principal, project_id: uuid.UUID, changes: dict[str, Any]
) -> ProjectRow:
    row = await _manageable(db, p, project_id)
    if "name" in changes and changes["name"] != row.name:
        await _require_name_free(db, row.domain_name, changes["name"], exclude=row.id)
    if "resource_policy" in changes:
        await require_reference(
            db, ProjectResourcePolicyRow, changes["resource_policy"], "resource_policy"
        )
    for key, value in changes.items():
        setattr(row, key, value)
    row.modified_at = func.now()
    await flush_or_conflict(db, "project")
    await db.refresh(row)
    return row


async def delete_project(db: AsyncSession, p: Principal, project_id: uuid.UUID) -> str:
    """Returns the project's domain (for the audit log)."""
    row = await _manageable(db, p, project_id)
    busy = await db.scalar(
        select(
            live_sessions(SessionRow.project_id == row.id)
            | exists().where(VFolderRow.project_id == row.id)
        )
    )
    if busy:
        raise FailedPrecondition("the project has live sessions or vfolders", reason="IN_USE")
    await delete_dead_sessions(db, SessionRow.project_id == row.id)
    await db.delete(row)
    try:
        await db.flush()
    except IntegrityError as exc:
        raise FailedPrecondition("the project is still referenced", reason="IN_USE") from exc
    return row.domain_name


async def add_members(
    db: AsyncSession, p: Principal, project_id: uuid.UUID, user_ids: Sequence[uuid.UUID]
) -> str:
    """Returns the project's domain (for the audit log)."""
    row = await _manageable(db, p, project_id)
    users = {
        u.id: u
        for u in (await db.execute(select(UserRow).where(UserRow.id.in_(user_ids)))).scalars()
    }
    wrong_domain: list[FieldViolation] = []
    for i, user_id in enumerate(user_ids):
        user = users.get(user_id)
        # Users the caller may not see do not exist as far as the caller knows.
        if user is None or not can_read_domain_objects(p, user.domain_name):
            raise reference_not_found("user")
        if user.domain_name != row.domain_name:
            wrong_domain.append(
                FieldViolation(f"user_ids[{i}]", "belongs to another domain than the project")
            )
    if wrong_domain:
        raise InvalidArgument(wrong_domain)
    if any(users[uid].status == DELETED for uid in user_ids):
        raise FailedPrecondition("a deleted user cannot join a project", reason="INVALID_STATE")
    await db.execute(
        insert(ProjectMemberRow)
        .values([{"project_id": row.id, "user_id": uid} for uid in user_ids])
        .on_conflict_do_nothing()
    )
    return row.domain_name


async def remove_members(
    db: AsyncSession, p: Principal, project_id: uuid.UUID, user_ids: Sequence[uuid.UUID]
) -> str:
    """Returns the project's domain (for the audit log)."""
    row = await _manageable(db, p, project_id)
    await db.execute(
        delete(ProjectMemberRow).where(
            ProjectMemberRow.project_id == row.id, ProjectMemberRow.user_id.in_(user_ids)
        )
    )
    return row.domain_name


async def list_members(
    db: AsyncSession, p: Principal, project_id: uuid.UUID, page_size: int, page_token: str
) -> tuple[list[UserRow], str]:
    row = await _visible(db, p, project_id)
    query_key = {"list": "project-members", "p": row.id}
    after = decode_token(page_token, query_key)
    query = (
        select(UserRow)
        .join(ProjectMemberRow, ProjectMemberRow.user_id == UserRow.id)
        .where(ProjectMemberRow.project_id == row.id)
        .order_by(UserRow.username)
        .limit(page_size + 1)
    )
    if after is not None:
        query = query.where(UserRow.username > after)
    users = list((await db.execute(query)).scalars())
    token = encode_token(users[page_size - 1].username, query_key) if len(users) > page_size else ""
    return users[:page_size], token
