"""Domain administration: create, read, list, update, delete."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from sqlalchemy import exists, func, select
from sqlalchemy.ext.asyncio import AsyncSession

from bai.common.errors import AlreadyExists, FailedPrecondition, NotFound
from bai.manager.auth.access import Access, require_domain_visible, require_superadmin
from bai.manager.auth.principal import Principal
from bai.manager.db.identity import DomainRow, ProjectRow, UserRow
from bai.manager.paging import decode_token, encode_token

UPDATABLE = (
    "description",
    "is_active",
    "total_resource_slots",
    "allowed_vfolder_hosts",
    "allowed_docker_registries",
)


async def create_domain(db: AsyncSession, p: Principal, values: dict[str, Any]) -> DomainRow:
    require_superadmin(p)
    if await db.get(DomainRow, values["name"]) is not None:
        raise AlreadyExists(f"domain {values['name']!r} already exists")
    row = DomainRow(**values)
    db.add(row)
    await db.flush()
    await db.refresh(row)
    return row


async def get_domain(db: AsyncSession, p: Principal, name: str) -> DomainRow:
    require_domain_visible(p, name, "domain")
    row = await db.get(DomainRow, name)
    if row is None:
        raise NotFound("domain not found")
    return row


async def list_domains(
    db: AsyncSession, p: Principal, page_size: int, page_token: str
) -> tuple[Sequence[DomainRow], str]:
    query_key = {"list": "domains"}
    after = decode_token(page_token, query_key)
    query = select(DomainRow).order_by(DomainRow.name).limit(page_size + 1)
    if not p.is_superadmin:
        query = query.where(DomainRow.name == p.domain_name)
    if after is not None:
        query = query.where(DomainRow.name > after)
    rows = list((await db.execute(query)).scalars())
    next_token = encode_token(rows[page_size - 1].name, query_key) if len(rows) > page_size else ""
    return rows[:page_size], next_token


async def update_domain(
    db: AsyncSession, p: Principal, name: str, changes: dict[str, Any]
) -> DomainRow:
    require_domain_visible(p, name, "domain")
    require_superadmin(p, Access.WRITE)
    row = await db.get(DomainRow, name, with_for_update=True)
    if row is None:
        raise NotFound("domain not found")
    for key, value in changes.items():
        setattr(row, key, value)
    row.modified_at = func.now()
    await db.flush()
    await db.refresh(row)
    return row


async def delete_domain(db: AsyncSession, p: Principal, name: str) -> None:
    require_domain_visible(p, name, "domain")
    require_superadmin(p, Access.WRITE)
    row = await db.get(DomainRow, name, with_for_update=True)
    if row is None:
        raise NotFound("domain not found")
    in_use = await db.scalar(
        select(
            exists().where(ProjectRow.domain_name == name)
            | exists().where(UserRow.domain_name == name)
        )
    )
    if in_use:
        raise FailedPrecondition("domain still has projects or users", reason="IN_USE")
    await db.delete(row)
