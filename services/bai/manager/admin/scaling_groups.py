"""Scaling groups: CRUD, associations with domains/projects/keypairs, allowed groups.

Superadmins write; admins and monitors read the groups associated with their
domain; role USER only lists the groups it may create sessions in.
"""

from __future__ import annotations

import functools
import uuid
from collections.abc import Sequence
from typing import Any

from sqlalchemy import (
    Executable,
    Select,
    bindparam,
    delete,
    exists,
    false,
    func,
    null,
    or_,
    select,
    update,
)
from sqlalchemy.dialects.postgresql import insert
from sqlalchemy.ext.asyncio import AsyncSession

from bai.common.errors import AlreadyExists, FailedPrecondition, NotFound
from bai.manager.admin.resource_policies import flush_or_raise, page_by_name
from bai.manager.auth.access import (
    Access,
    can_read_domain_objects,
    can_read_project_of,
    gets_user_view_of_scaling_groups,
    require_scaling_group_reader,
    require_superadmin,
)
from bai.manager.auth.principal import Principal
from bai.manager.db.compute import AgentRow, SessionRow
from bai.manager.db.identity import DomainRow, KeypairRow, ProjectMemberRow, ProjectRow, UserRow
from bai.manager.db.policies import (
    ScalingGroupForDomainRow,
    ScalingGroupForKeypairRow,
    ScalingGroupForProjectRow,
    ScalingGroupRow,
)

UPDATABLE = (
    "description",
    "is_active",
    "is_public",
    "is_default",
    "wsproxy_addr",
    "driver",
    "driver_opts",
    "scheduler",
    "scheduler_opts",
    "use_host_network",
)
# Sessions in these states no longer hold a scaling group.
FINISHED_SESSION_STATUSES = ("TERMINATED", "CANCELLED")
# Serializes the moves of the is_default flag between groups.
DEFAULT_FLAG_LOCK = 0x5CA1E600

Association = type[ScalingGroupForDomainRow | ScalingGroupForProjectRow | ScalingGroupForKeypairRow]
# Target kind (the association table's column) -> association table.
ASSOCIATIONS: dict[str, Association] = {
    "domain_name": ScalingGroupForDomainRow,
    "project_id": ScalingGroupForProjectRow,
    "access_key": ScalingGroupForKeypairRow,
}


def _domain_groups(domain_name: str) -> Select[Any]:
    return select(ScalingGroupForDomainRow.scaling_group).where(
        ScalingGroupForDomainRow.domain_name == domain_name
    )


def _readable(p: Principal) -> Select[Any]:
    require_scaling_group_reader(p)
    query = select(ScalingGroupRow)
    if not p.is_superadmin:
        query = query.where(ScalingGroupRow.name.in_(_domain_groups(p.domain_name)))
    return query


async def _take_default_flag(db: AsyncSession, name: str) -> None:
    """Clear is_default on every other group (at most one default)."""
    await db.execute(select(func.pg_advisory_xact_lock(DEFAULT_FLAG_LOCK)))
    await db.execute(
        update(ScalingGroupRow)
        .where(ScalingGroupRow.is_default, ScalingGroupRow.name != name)
        .values(is_default=False)
    )


async def _locked(db: AsyncSession, name: str) -> ScalingGroupRow:
    row = await db.get(ScalingGroupRow, name, with_for_update=True)
    if row is None:
        raise NotFound("scaling group not found")
    return row


async def create_scaling_group(
    db: AsyncSession, p: Principal, values: dict[str, Any]
) -> ScalingGroupRow:
    require_superadmin(p)
    taken = AlreadyExists(f"scaling group {values['name']!r} already exists")
    if await db.get(ScalingGroupRow, values["name"]) is not None:
        raise taken
    if values.get("is_default"):
        await _take_default_flag(db, values["name"])
    row = ScalingGroupRow(**values)
    db.add(row)
    await flush_or_raise(db, taken)
    await db.refresh(row)
    return row


async def get_scaling_group(db: AsyncSession, p: Principal, name: str) -> ScalingGroupRow:
    query = _readable(p).where(ScalingGroupRow.name == name)
    row: ScalingGroupRow | None = (await db.execute(query)).scalar_one_or_none()
    if row is None:
        raise NotFound("scaling group not found")
    return row


async def list_scaling_groups(
    db: AsyncSession, p: Principal, page_size: int, page_token: str, domain_name: str
) -> tuple[Sequence[ScalingGroupRow], str]:
    query = _readable(p)
    if domain_name:
        query = query.where(ScalingGroupRow.name.in_(_domain_groups(domain_name)))
        # Another domain's associations are its own business: an empty page.
        if not can_read_domain_objects(p, domain_name):
            query = query.where(false())
    query_key = {"list": "scaling_groups", "domain": domain_name}
    return await page_by_name(db, query, ScalingGroupRow.name, page_size, page_token, query_key)


async def update_scaling_group(
    db: AsyncSession, p: Principal, name: str, changes: dict[str, Any]
) -> ScalingGroupRow:
    require_superadmin(p, Access.WRITE)
    row = await _locked(db, name)
    if changes.get("is_default"):
        await _take_default_flag(db, name)
    for key, value in changes.items():
        setattr(row, key, value)
    await db.flush()
    await db.refresh(row)
    return row


async def delete_scaling_group(db: AsyncSession, p: Principal, name: str) -> None:
    require_superadmin(p, Access.WRITE)
    row = await _locked(db, name)
    in_use = FailedPrecondition(
        f"scaling group {name!r} still has agents or sessions", reason="IN_USE"
    )
    busy = await db.scalar(
        select(
            exists().where(AgentRow.scaling_group == name)
            | exists().where(
                SessionRow.scaling_group == name,
                SessionRow.status.not_in(FINISHED_SESSION_STATUSES),
            )
        )
    )
    if busy:
        raise in_use
    await db.delete(row)
    await flush_or_raise(db, in_use)


async def _target_domain(db: AsyncSession, kind: str, value: Any) -> str | None:
    """Domain of an association target, or None when the target does not exist."""
    if kind == "domain_name":
        return await db.scalar(select(DomainRow.name).where(DomainRow.name == value))
    if kind == "project_id":
        return await db.scalar(select(ProjectRow.domain_name).where(ProjectRow.id == value))
    return await db.scalar(
        select(UserRow.domain_name)
        .join(KeypairRow, KeypairRow.user_id == UserRow.id)
        .where(KeypairRow.access_key == value)
    )


async def associate(db: AsyncSession, p: Principal, name: str, kind: str, value: Any) -> str:
    """Allow the target to use the group; returns the target's domain."""
    require_superadmin(p, Access.WRITE)
    await _locked(db, name)
    missing = FailedPrecondition(
        f"{kind.replace('_', ' ')} does not exist", reason="REFERENCE_NOT_FOUND"
    )
    domain = await _target_domain(db, kind, value)
    if domain is None:
        raise missing
    table = ASSOCIATIONS[kind]
    await db.execute(
        insert(table).values({"scaling_group": name, kind: value}).on_conflict_do_nothing()
    )
    await flush_or_raise(db, missing)
    return domain


async def disassociate(
    db: AsyncSession, p: Principal, name: str, kind: str, value: Any
) -> str | None:
    """Remove an association if there is one; returns the target's domain if known."""
    require_superadmin(p, Access.WRITE)
    await _locked(db, name)
    table = ASSOCIATIONS[kind]
    await db.execute(
        delete(table).where(table.scaling_group == name, getattr(table, kind) == value)
    )
    return await _target_domain(db, kind, value)


def _project_domain(project_id: uuid.UUID) -> Select[str]:
    return select(ProjectRow.domain_name).where(ProjectRow.id == project_id)


@functools.cache
def _allowed_query(by_keypair: bool, project_given: bool, public_only: bool) -> Executable:
    """Built once per shape, with bound parameters (domain_name, access_key, project_id,
    user_id): SQLAlchemy then finds its compiled statement without rebuilding the key.
    With a project, its domain rides along with the groups (one statement when any
    group is allowed)."""
    by_domain = ScalingGroupForDomainRow.domain_name == bindparam("domain_name")
    domain_groups = select(ScalingGroupForDomainRow.scaling_group).where(by_domain)
    sources = [ScalingGroupRow.name.in_(domain_groups)]
    if by_keypair:
        by_access_key = ScalingGroupForKeypairRow.access_key == bindparam("access_key")
        keypair_groups = select(ScalingGroupForKeypairRow.scaling_group).where(by_access_key)
        sources.append(ScalingGroupRow.name.in_(keypair_groups))
    by_project = select(ScalingGroupForProjectRow.scaling_group)
    project_domain: Any = null()
    if project_given:
        project_id = bindparam("project_id", type_=ScalingGroupForProjectRow.project_id.type)
        by_project = by_project.where(ScalingGroupForProjectRow.project_id == project_id)
        project_domain = select(ProjectRow.domain_name).where(ProjectRow.id == project_id)
        project_domain = project_domain.scalar_subquery()
    else:
        by_project = by_project.join(
            ProjectMemberRow, ProjectMemberRow.project_id == ScalingGroupForProjectRow.project_id
        ).where(ProjectMemberRow.user_id == bindparam("user_id"))
    sources.append(ScalingGroupRow.name.in_(by_project))
    query = select(ScalingGroupRow, project_domain).where(ScalingGroupRow.is_active, or_(*sources))
    if public_only:
        query = query.where(ScalingGroupRow.is_public)
    return query.order_by(ScalingGroupRow.name)


async def list_allowed(
    db: AsyncSession, p: Principal, project_id: uuid.UUID | None
) -> Sequence[ScalingGroupRow]:
    """Active groups the caller may create sessions in, ordered by name."""
    query = _allowed_query(
        bool(p.access_key), project_id is not None, gets_user_view_of_scaling_groups(p)
    )
    params = {
        "domain_name": p.domain_name,
        "access_key": p.access_key,
        "project_id": project_id,
        "user_id": p.user_id,
    }
    rows = (await db.execute(query, params)).all()
    if project_id is not None:
        domain = rows[0][1] if rows else await db.scalar(_project_domain(project_id))
        if domain is None or not can_read_project_of(p, domain, project_id):
            raise NotFound("project not found")
    return [row[0] for row in rows]
