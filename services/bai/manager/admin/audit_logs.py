"""Reading the audit log: newest first, limited to what the caller may see.

Superadmins read every entry, admins and monitors the entries of their
domain, users the entries they made. Filters only narrow that scope, so a
filter outside it yields an empty page.
"""

from __future__ import annotations

import uuid
from collections.abc import Sequence
from dataclasses import asdict, dataclass
from datetime import datetime

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from bai.common.errors import FieldViolation, InvalidArgument
from bai.manager.auth.access import audit_scope
from bai.manager.auth.principal import Principal
from bai.manager.db.audit import AuditLogRow
from bai.manager.paging import decode_token, encode_token


@dataclass(frozen=True)
class AuditFilter:
    domain_name: str = ""
    user_id: uuid.UUID | None = None
    entity_type: str = ""
    since: datetime | None = None
    until: datetime | None = None


def _cursor(row: AuditLogRow) -> str:
    return f"{row.created_at.isoformat()}|{row.id}"


def _parse_cursor(key: str) -> tuple[datetime, uuid.UUID]:
    try:
        created, _, ident = key.partition("|")
        at = datetime.fromisoformat(created)
        if at.tzinfo is None:
            raise ValueError("no time zone")
        return at, uuid.UUID(ident)
    except ValueError as exc:
        raise InvalidArgument(
            [FieldViolation("page_token", "is not a token from this list")],
            reason="INVALID_PAGE_TOKEN",
        ) from exc


async def list_audit_logs(
    db: AsyncSession, p: Principal, f: AuditFilter, page_size: int, page_token: str
) -> tuple[Sequence[AuditLogRow], str]:
    scope_domain, scope_actor = audit_scope(p)
    # The token is bound to the filters and to the caller's scope.
    query_key = {"list": "audit_logs", "filter": asdict(f), "scope": [scope_domain, scope_actor]}
    after = decode_token(page_token, query_key)
    query = select(AuditLogRow)
    for domain in {scope_domain, f.domain_name or None} - {None}:
        query = query.where(AuditLogRow.domain_name == domain)
    for actor in {scope_actor, f.user_id} - {None}:
        query = query.where(AuditLogRow.actor_user_id == actor)
    if f.entity_type:
        query = query.where(AuditLogRow.entity_type == f.entity_type)
    if f.since is not None:
        query = query.where(AuditLogRow.created_at >= f.since)
    if f.until is not None:
        query = query.where(AuditLogRow.created_at < f.until)
    if after is not None:
        created, ident = _parse_cursor(after)
        query = query.where(
            (AuditLogRow.created_at < created)
            | ((AuditLogRow.created_at == created) & (AuditLogRow.id < ident))
        )
    order = (AuditLogRow.created_at.desc(), AuditLogRow.id.desc())
    rows = list((await db.execute(query.order_by(*order).limit(page_size + 1))).scalars())
    next_token = ""
    if len(rows) > page_size:
        next_token = encode_token(_cursor(rows[page_size - 1]), query_key)
    return rows[:page_size], next_token
