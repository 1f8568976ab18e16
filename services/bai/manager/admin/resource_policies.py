"""Resource policies of the three kinds (keypair, user, project), handled alike.

Policies are global and referenced by name. Superadmins write them; admins
and monitors read all of them; a user reads only the policies assigned to
them, and any other is NOT_FOUND.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any, cast

from sqlalchemy import Select, exists, select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncSession
from sqlalchemy.orm import InstrumentedAttribute

from bai.common.errors import AlreadyExists, BaiError, FailedPrecondition, NotFound
from bai.manager.auth.access import Access, reads_every_policy, require_superadmin
from bai.manager.auth.principal import Principal
from bai.manager.db.identity import KeypairRow, ProjectMemberRow, ProjectRow, UserRow
from bai.manager.db.policies import (
    KeypairResourcePolicyRow,
    ProjectResourcePolicyRow,
    UserResourcePolicyRow,
)
from bai.manager.paging import decode_token, encode_token

PolicyRow = KeypairResourcePolicyRow | UserResourcePolicyRow | ProjectResourcePolicyRow


@dataclass(frozen=True, eq=False)
class PolicyKind:
    """What differs between the three kinds of policy."""

    entity: str  # audit entity type, e.g. "keypair_resource_policy"
    model: type[PolicyRow]
    # Column of the referencing table (keypairs, users, projects).
    referenced_by: InstrumentedAttribute[str]
    # Names of the policies assigned to a user (what role USER may read).
    assigned: Callable[[Principal], Select[Any]]
    updatable: tuple[str, ...]

    @property
    def label(self) -> str:
        return self.entity.replace("_", " ")


KEYPAIR = PolicyKind(
    entity="keypair_resource_policy",
    model=KeypairResourcePolicyRow,
    referenced_by=KeypairRow.resource_policy,
    assigned=lambda p: select(KeypairRow.resource_policy).where(KeypairRow.user_id == p.user_id),
    updatable=(
        "total_resource_slots",
        "default_for_unspecified",
        "max_session_lifetime",
        "max_concurrent_sessions",
        "max_concurrent_sftp_sessions",
        "max_pending_session_count",
        "max_pending_session_resource_slots",
        "max_priority",
        "max_containers_per_session",
        "idle_timeout",
        "allowed_vfolder_hosts",
    ),
)
USER = PolicyKind(
    entity="user_resource_policy",
    model=UserResourcePolicyRow,
    referenced_by=UserRow.resource_policy,
    assigned=lambda p: select(UserRow.resource_policy).where(UserRow.id == p.user_id),
    updatable=(
        "max_vfolder_count",
        "max_quota_scope_size",
        "max_session_count_per_model_session",
        "max_customized_image_count",
        "max_concurrent_logins",
    ),
)
PROJECT = PolicyKind(
    entity="project_resource_policy",
    model=ProjectResourcePolicyRow,
    referenced_by=ProjectRow.resource_policy,
    assigned=lambda p: (
        select(ProjectRow.resource_policy)
        .join(ProjectMemberRow, ProjectMemberRow.project_id == ProjectRow.id)
        .where(ProjectMemberRow.user_id == p.user_id)
    ),
    updatable=("max_vfolder_count", "max_quota_scope_size", "max_network_count"),
)


async def flush_or_raise(db: AsyncSession, error: BaiError) -> None:
    """Flush; a constraint the checks before could not see (a race) becomes `error`."""
    try:
        await db.flush()
    except IntegrityError as exc:
        raise error from exc


async def page_by_name(
    db: AsyncSession,
    query: Select[Any],
    key: InstrumentedAttribute[str],
    page_size: int,
    page_token: str,
    query_key: Any,
) -> tuple[list[Any], str]:
    """One page of `query` ordered by the unique string column `key`."""
    after = decode_token(page_token, query_key)
    query = query.order_by(key).limit(page_size + 1)
    if after is not None:
        query = query.where(key > after)
    rows = list((await db.execute(query)).scalars())
    next_token = ""
    if len(rows) > page_size:
        next_token = encode_token(getattr(rows[page_size - 1], key.key), query_key)
    return rows[:page_size], next_token


def _visible(kind: PolicyKind, p: Principal) -> Select[Any]:
    query = select(kind.model)
    if not reads_every_policy(p):
        query = query.where(kind.model.name.in_(kind.assigned(p)))
    return query


async def create_policy(
    db: AsyncSession, p: Principal, kind: PolicyKind, values: dict[str, Any]
) -> PolicyRow:
    require_superadmin(p)
    taken = AlreadyExists(f"{kind.label} {values['name']!r} already exists")
    if await db.get(kind.model, values["name"]) is not None:
        raise taken
    row = kind.model(**values)
    db.add(row)
    await flush_or_raise(db, taken)
    await db.refresh(row)
    return row


async def get_policy(db: AsyncSession, p: Principal, kind: PolicyKind, name: str) -> PolicyRow:
    query = _visible(kind, p).where(kind.model.name == name)
    row = cast(PolicyRow | None, (await db.execute(query)).scalar_one_or_none())
    if row is None:
        raise NotFound(f"{kind.label} not found")
    return row


async def list_policies(
    db: AsyncSession, p: Principal, kind: PolicyKind, page_size: int, page_token: str
) -> tuple[Sequence[PolicyRow], str]:
    query_key = {"list": kind.entity}
    return await page_by_name(
        db, _visible(kind, p), kind.model.name, page_size, page_token, query_key
    )


async def _locked(db: AsyncSession, kind: PolicyKind, name: str) -> PolicyRow:
    row = cast(PolicyRow | None, await db.get(kind.model, name, with_for_update=True))
    if row is None:
        raise NotFound(f"{kind.label} not found")
    return row


async def update_policy(
    db: AsyncSession, p: Principal, kind: PolicyKind, name: str, changes: dict[str, Any]
) -> PolicyRow:
    require_superadmin(p, Access.WRITE)
    row = await _locked(db, kind, name)
    for key, value in changes.items():
        setattr(row, key, value)
    await db.flush()
    await db.refresh(row)
    return row


async def delete_policy(db: AsyncSession, p: Principal, kind: PolicyKind, name: str) -> None:
    require_superadmin(p, Access.WRITE)
    row = await _locked(db, kind, name)
    in_use = FailedPrecondition(f"{kind.label} {name!r} is still referenced", reason="IN_USE")
    if await db.scalar(select(exists().where(kind.referenced_by == name))):
        raise in_use
    await db.delete(row)
    await flush_or_raise(db, in_use)
