"""Keypair administration: issue, read, list, update, delete.

The secret key leaves this module only on the row returned by create_keypair.
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import select, tuple_
from sqlalchemy.ext.asyncio import AsyncSession

from bai.common.errors import FailedPrecondition, FieldViolation, InvalidArgument, NotFound
from bai.common.signing import new_keypair
from bai.manager.admin.users import (
    DEFAULT_RATE_LIMIT,
    DELETED,
    flush_or_conflict,
    live_sessions,
    reference_not_found,
    require_reference,
)
from bai.manager.auth.access import can_see_user, require_user_manageable, require_writer
from bai.manager.auth.principal import Principal, Role
from bai.manager.db.compute import SessionRow
from bai.manager.db.identity import KeypairRow, UserRow
from bai.manager.db.policies import KeypairResourcePolicyRow
from bai.manager.paging import decode_token, encode_token

UPDATABLE = ("is_active", "is_admin", "resource_policy", "rate_limit")
LOW_ROLES = (Role.USER, Role.MONITOR)


def _require_admin_flag_allowed(is_admin: bool, owner_role: str) -> None:
    if is_admin and Role(owner_role) in LOW_ROLES:
        raise InvalidArgument.field(
            "is_admin", "may be true only for owners with role SUPERADMIN or ADMIN"
        )


async def create_keypair(
    db: AsyncSession,
    p: Principal,
    user_id: uuid.UUID,
    is_admin: bool,
    resource_policy: str,
    rate_limit: int,
) -> Owned:
    require_writer(p)
    owner = await db.get(UserRow, user_id, with_for_update=True)
    if owner is None or not can_see_user(p, owner.id, owner.domain_name):
        raise reference_not_found("user")
    require_user_manageable(p, owner.domain_name, Role(owner.role), "user")
    if owner.status == DELETED:
        raise FailedPrecondition("the user is deleted", reason="INVALID_STATE")
    _require_admin_flag_allowed(is_admin, owner.role)
    await require_reference(db, KeypairResourcePolicyRow, resource_policy, "resource_policy")
    access_key, secret_key = new_keypair()
    row = KeypairRow(
        access_key=access_key,
        secret_key=secret_key,
        user_id=owner.id,
        is_admin=is_admin,
        resource_policy=resource_policy,
        rate_limit=rate_limit or DEFAULT_RATE_LIMIT,
    )
    db.add(row)
    await flush_or_conflict(db, "keypair")
    await db.refresh(row)
    return Owned(row, owner)


@dataclass
class Owned:
    keypair: KeypairRow
    owner: UserRow


async def _find(db: AsyncSession, access_key: str, lock: bool) -> Owned | None:
    query = select(KeypairRow, UserRow).join(UserRow, UserRow.id == KeypairRow.user_id)
    query = query.where(KeypairRow.access_key == access_key)
    if lock:
        query = query.with_for_update(of=KeypairRow)
    found = (await db.execute(query)).first()
    return Owned(found[0], found[1]) if found is not None else None


async def get_keypair(db: AsyncSession, p: Principal, access_key: str) -> KeypairRow:
    found = await _find(db, access_key, lock=False)
    if found is None or not can_see_user(p, found.owner.id, found.owner.domain_name):
        raise NotFound("keypair not found")
    return found.keypair


def _encode_key(created_at: datetime, access_key: str) -> str:
    return f"{created_at.isoformat()}|{access_key}"


def _decode_key(key: str) -> tuple[datetime, str]:
    when, _, access_key = key.partition("|")
    try:
        created_at = datetime.fromisoformat(when)
    except ValueError:
        created_at = None
    if created_at is None or created_at.tzinfo is None:
        raise InvalidArgument(
            [FieldViolation("page_token", "is not a token from this list")],
            reason="INVALID_PAGE_TOKEN",
        )
    return created_at, access_key


async def list_keypairs(
    db: AsyncSession,
    p: Principal,
    user_id: uuid.UUID | None,
    is_active: bool | None,
    page_size: int,
    page_token: str,
) -> tuple[list[KeypairRow], str]:
    query_key = {"list": "keypairs", "u": user_id, "a": is_active}
    after = decode_token(page_token, query_key)
    order = (KeypairRow.created_at, KeypairRow.access_key)
    query = select(KeypairRow).order_by(*order).limit(page_size + 1)
    if p.role is Role.USER:
        query = query.where(KeypairRow.user_id == p.user_id)
    elif not p.is_superadmin:
        query = query.join(UserRow, UserRow.id == KeypairRow.user_id).where(
            UserRow.domain_name == p.domain_name
        )
    if user_id is not None:
        query = query.where(KeypairRow.user_id == user_id)
    if is_active is not None:
        query = query.where(KeypairRow.is_active == is_active)
    if after is not None:
        query = query.where(tuple_(*order) > tuple_(*_decode_key(after)))
    rows = list((await db.execute(query)).scalars())
    token = ""
    if len(rows) > page_size:
        last = rows[page_size - 1]
        token = encode_token(_encode_key(last.created_at, last.access_key), query_key)
    return rows[:page_size], token


async def _manageable(db: AsyncSession, p: Principal, access_key: str) -> Owned:
    require_writer(p)
    found = await _find(db, access_key, lock=True)
    if found is None:
        raise NotFound("keypair not found")
    require_user_manageable(p, found.owner.domain_name, Role(found.owner.role), "keypair")
    return found


async def update_keypair(
    db: AsyncSession, p: Principal, access_key: str, changes: dict[str, Any]
) -> Owned:
    found = await _manageable(db, p, access_key)
    if changes.get("is_admin"):
        _require_admin_flag_allowed(True, found.owner.role)
    if "resource_policy" in changes:
        await require_reference(
            db, KeypairResourcePolicyRow, changes["resource_policy"], "resource_policy"
        )
    for key, value in changes.items():
        setattr(found.keypair, key, value)
    await flush_or_conflict(db, "keypair")
    await db.refresh(found.keypair)
    return found


async def delete_keypair(db: AsyncSession, p: Principal, access_key: str) -> str:
    """Returns the domain the keypair belonged to (for the audit log)."""
    found = await _manageable(db, p, access_key)
    if await db.scalar(select(live_sessions(SessionRow.access_key == access_key))):
        raise FailedPrecondition("sessions created with this keypair still run", reason="IN_USE")
    await db.delete(found.keypair)
    await db.flush()
    return found.owner.domain_name
