"""Reading folders with the caller's access, and writing them as messages."""

from __future__ import annotations

import uuid
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import UTC, datetime

from sqlalchemy import select, text, update
from sqlalchemy.ext.asyncio import AsyncSession

from bai.api.manager.v1 import vfolder_pb2 as pb
from bai.manager.api.convert import timestamp
from bai.manager.auth.principal import Principal
from bai.manager.db.storage import VFolderPermissionRow, VFolderRow
from bai.manager.validation import Violations
from bai.manager.vfolders import names
from bai.manager.vfolders.permissions import FolderAccess, FolderFacts, access_of, not_found
from bai.manager.vfolders.storage_client import HostRef

_MOUNTING_SESSIONS = text(
    "SELECT s.id, m->>'vfolder_id' FROM sessions s, jsonb_array_elements(s.mounts) m "
    "WHERE s.status <> ALL(:ended) AND m->>'vfolder_id' = ANY(:ids)"
)


@dataclass(frozen=True)
class Loaded:
    row: VFolderRow
    access: FolderAccess


def now() -> datetime:
    return datetime.now(UTC)


def facts(row: VFolderRow) -> FolderFacts:
    return FolderFacts(
        row.ownership_type, row.user_id, row.project_id, row.domain_name, row.permission
    )


def folder_id(v: Violations, value: str, field: str = "vfolder_id") -> uuid.UUID:
    return v.uuid(field, value) or uuid.UUID(int=0)


def host_of(row: VFolderRow) -> HostRef:
    ref = HostRef.parse(row.host)
    if ref is None:  # written by this package only, so never
        raise ValueError(f"vfolder {row.id} has a malformed host {row.host!r}")
    return ref


async def share_of(db: AsyncSession, vfolder_id: uuid.UUID, user_id: uuid.UUID) -> str | None:
    return await db.scalar(
        select(VFolderPermissionRow.permission).where(
            VFolderPermissionRow.vfolder_id == vfolder_id,
            VFolderPermissionRow.user_id == user_id,
        )
    )


async def load(
    db: AsyncSession, p: Principal, vfolder_id: uuid.UUID, *, for_update: bool = False
) -> Loaded:
    """The folder and the caller's access; NOT_FOUND when they cannot see it."""
    query = select(VFolderRow).where(VFolderRow.id == vfolder_id)
    if for_update:
        query = query.with_for_update()
    row = await db.scalar(query)
    if row is None:
        raise not_found()
    access = access_of(p, facts(row), await share_of(db, row.id, p.user_id))
    if access is None:
        raise not_found()
    return Loaded(row, access)


def set_status(row: VFolderRow, status: str) -> None:
    row.status = status
    row.status_changed_at = now()


async def set_status_by_id(db: AsyncSession, vfolder_id: uuid.UUID, status: str) -> None:
    await db.execute(
        update(VFolderRow)
        .where(VFolderRow.id == vfolder_id)
        .values(status=status, status_changed_at=now())
    )


async def mounting_sessions(
    db: AsyncSession, vfolder_ids: Iterable[uuid.UUID]
) -> dict[uuid.UUID, list[str]]:
    """Live sessions whose mounts name each folder (sessions store mounts as
    dicts with a "vfolder_id")."""
    ids = [str(i) for i in vfolder_ids]
    found: dict[uuid.UUID, list[str]] = {}
    if not ids:
        return found
    rows = await db.execute(
        _MOUNTING_SESSIONS, {"ended": list(names.ENDED_SESSION_STATUSES), "ids": ids}
    )
    for session_id, vfolder_id in rows:
        found.setdefault(uuid.UUID(vfolder_id), []).append(str(session_id))
    return found


def to_proto(row: VFolderRow, access: FolderAccess, mounted_by: list[str]) -> pb.VFolder:
    return pb.VFolder(
        id=str(row.id),
        name=row.name,
        host=row.host,
        quota_scope=names.quota_scope(row.quota_scope_id),
        ownership_type=names.OWNERSHIP.get(
            row.ownership_type, pb.FOLDER_OWNERSHIP_TYPE_UNSPECIFIED
        ),
        user_id=str(row.user_id) if row.user_id else "",
        project_id=str(row.project_id) if row.project_id else "",
        creator=row.creator,
        usage_mode=names.USAGE_MODE.get(row.usage_mode, names.NO_USAGE_MODE),
        permission=names.PERMISSION.get(
            row.permission if row.ownership_type == "group" else "wd", names.NO_PERMISSION
        ),
        caller_permission=names.PERMISSION[access.permission.label],
        is_owner=access.is_owner,
        cloneable=row.cloneable,
        status=names.STATUS.get(row.status, pb.FOLDER_STATUS_UNSPECIFIED),
        status_changed_at=timestamp(row.status_changed_at),
        created_at=timestamp(row.created_at),
        last_used_at=timestamp(row.last_used_at),
        mounted_by_session_ids=sorted(mounted_by),
    )


async def loaded_to_proto(db: AsyncSession, loaded: Loaded) -> pb.VFolder:
    mounted = await mounting_sessions(db, [loaded.row.id])
    return to_proto(loaded.row, loaded.access, mounted.get(loaded.row.id, []))
