"""ListVFolders: the folders a caller can access (own, project, shared), by name."""

from __future__ import annotations

import uuid
from dataclasses import dataclass

from sqlalchemy import and_, false, or_, select, true, tuple_
from sqlalchemy.ext.asyncio import AsyncSession

from bai.api.manager.v1 import vfolder_pb2 as pb
from bai.common.errors import FieldViolation, InvalidArgument, PermissionDenied
from bai.manager.auth.access import can_read_domain_objects
from bai.manager.auth.principal import Principal, Role
from bai.manager.db.storage import VFolderPermissionRow, VFolderRow
from bai.manager.paging import decode_token, encode_token
from bai.manager.vfolders import names
from bai.manager.vfolders.permissions import access_of
from bai.manager.vfolders.records import facts, mounting_sessions, to_proto


@dataclass(frozen=True)
class FolderFilter:
    ownership: str | None = None
    project_id: uuid.UUID | None = None
    usage_mode: str | None = None
    host: str = ""
    statuses: tuple[str, ...] = names.LISTED_BY_DEFAULT
    all_users: bool = False
    user_id: uuid.UUID | None = None


def _scope(p: Principal, f: FolderFilter, share: object) -> object:
    if f.all_users:
        if not can_read_domain_objects(p, p.domain_name):
            raise PermissionDenied(
                "only admins and monitors list every user's folders", reason="ROLE_FORBIDDEN"
            )
        clauses = [] if p.role is Role.SUPERADMIN else [VFolderRow.domain_name == p.domain_name]
        if f.user_id is not None:
            clauses.append(VFolderRow.user_id == f.user_id)
        return and_(true(), *clauses)
    projects = list(p.project_ids)
    return or_(
        and_(VFolderRow.ownership_type == "user", VFolderRow.user_id == p.user_id),
        and_(VFolderRow.ownership_type == "group", VFolderRow.project_id.in_(projects))
        if projects
        else false(),
        share.isnot(None),  # type: ignore[attr-defined]
    )


def _page_key(after: str) -> tuple[str, uuid.UUID]:
    name, _, raw_id = after.rpartition("/")
    try:
        return name, uuid.UUID(raw_id)
    except ValueError as exc:
        raise InvalidArgument(
            [FieldViolation("page_token", "is not a token from this list")],
            reason="INVALID_PAGE_TOKEN",
        ) from exc


async def list_folders(
    db: AsyncSession, p: Principal, f: FolderFilter, page_size: int, page_token: str
) -> tuple[list[pb.VFolder], str]:
    share = VFolderPermissionRow.permission
    query = (
        select(VFolderRow, share)
        .outerjoin(
            VFolderPermissionRow,
            and_(
                VFolderPermissionRow.vfolder_id == VFolderRow.id,
                VFolderPermissionRow.user_id == p.user_id,
            ),
        )
        .where(_scope(p, f, share))  # type: ignore[arg-type]
        .where(VFolderRow.status.in_(f.statuses))
    )
    if f.ownership is not None:
        query = query.where(VFolderRow.ownership_type == f.ownership)
    if f.project_id is not None:
        query = query.where(VFolderRow.project_id == f.project_id)
    if f.usage_mode is not None:
        query = query.where(VFolderRow.usage_mode == f.usage_mode)
    if f.host:
        query = query.where(VFolderRow.host == f.host)
    key = (
        str(p.user_id),
        f.ownership,
        f.project_id,
        f.usage_mode,
        f.host,
        f.statuses,
        f.all_users,
        f.user_id,
    )
    after = decode_token(page_token, key)
    if after is not None:
        last_name, last_id = _page_key(after)
        query = query.where(tuple_(VFolderRow.name, VFolderRow.id) > tuple_(last_name, last_id))
    rows = (
        await db.execute(query.order_by(VFolderRow.name, VFolderRow.id).limit(page_size + 1))
    ).all()
    more = len(rows) > page_size
    rows = rows[:page_size]
    mounted = await mounting_sessions(db, [row.id for row, _ in rows])
    folders: list[pb.VFolder] = []
    for row, granted in rows:
        access = access_of(p, facts(row), granted)
        if access is not None:
            folders.append(to_proto(row, access, mounted.get(row.id, [])))
    token = encode_token(f"{rows[-1][0].name}/{rows[-1][0].id}", key) if more else ""
    return folders, token
