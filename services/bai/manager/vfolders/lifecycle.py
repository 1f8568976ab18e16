"""A folder's life after creation: options, rename, trash, restore, purge."""

from __future__ import annotations

import uuid
from dataclasses import dataclass

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from bai.api.manager.v1 import vfolder_pb2 as pb
from bai.api.storage.v1 import storage_pb2 as spb
from bai.common.errors import BaiError, FailedPrecondition, InvalidArgument
from bai.manager.auth.principal import Principal
from bai.manager.db.identity import UserRow
from bai.manager.db.storage import VFolderPermissionRow
from bai.manager.vfolders import names
from bai.manager.vfolders.creation import Owner, require_free_name, vfolder_ref
from bai.manager.vfolders.hosts import allowed_hosts_for
from bai.manager.vfolders.permissions import require_host_permission, require_manager
from bai.manager.vfolders.records import (
    Loaded,
    host_of,
    load,
    mounting_sessions,
    set_status,
    set_status_by_id,
)
from bai.manager.vfolders.storage_client import StorageProxies


@dataclass(frozen=True)
class FolderChanges:
    """Fields named in UpdateVFolder's mask (None: unchanged)."""

    name: str | None = None
    permission: str | None = None
    cloneable: bool | None = None
    usage_mode: str | None = None


def invalid_state(message: str) -> FailedPrecondition:
    return FailedPrecondition(message, reason="INVALID_STATE")


def require_ready(loaded: Loaded) -> None:
    if loaded.row.status != "ready":
        raise invalid_state(f"the folder is {loaded.row.status}, not ready")


async def require_unmounted(db: AsyncSession, loaded: Loaded, doing: str) -> None:
    mounted = (await mounting_sessions(db, [loaded.row.id])).get(loaded.row.id)
    if mounted:
        raise FailedPrecondition(
            f"cannot {doing} a folder mounted by live sessions",
            reason="IN_USE",
            metadata={"session_ids": ",".join(sorted(mounted))[:512]},
        )


def owner_of(loaded: Loaded) -> Owner:
    row = loaded.row
    owner_id = row.project_id if row.ownership_type == "group" else row.user_id
    assert owner_id is not None
    return Owner(row.ownership_type, owner_id, row.domain_name, 0)


async def shares(db: AsyncSession, vfolder_id: uuid.UUID) -> list[pb.VFolderShare]:
    rows = await db.execute(
        select(VFolderPermissionRow.user_id, UserRow.email, VFolderPermissionRow.permission)
        .join(UserRow, UserRow.id == VFolderPermissionRow.user_id)
        .where(VFolderPermissionRow.vfolder_id == vfolder_id)
        .order_by(UserRow.email)
    )
    return [
        pb.VFolderShare(user_id=str(uid), email=email, permission=names.PERMISSION[perm])
        for uid, email, perm in rows
    ]


async def update(
    db: AsyncSession, p: Principal, vfolder_id: uuid.UUID, changes: FolderChanges
) -> Loaded:
    loaded = await load(db, p, vfolder_id, for_update=True)
    require_manager(p, loaded.access)
    require_ready(loaded)
    row = loaded.row
    require_host_permission(await allowed_hosts_for(db, p, row), row.host, "modify-vfolder")
    if changes.permission is not None and row.ownership_type != "group":
        raise InvalidArgument.field(
            "vfolder.permission", "only project folders have a members' permission"
        )
    if changes.name is not None and changes.name != row.name:
        await require_unmounted(db, loaded, "rename")
        await require_free_name(db, owner_of(loaded), changes.name, except_id=row.id)
        row.name = changes.name
    if changes.permission is not None:
        row.permission = changes.permission
    if changes.cloneable is not None:
        row.cloneable = changes.cloneable
    if changes.usage_mode is not None:
        row.usage_mode = changes.usage_mode
    await db.flush()
    return loaded


async def trash(db: AsyncSession, p: Principal, vfolder_id: uuid.UUID) -> Loaded:
    """READY (or ERROR) -> DELETE_PENDING; the files stay until purged."""
    loaded = await load(db, p, vfolder_id, for_update=True)
    require_manager(p, loaded.access)
    row = loaded.row
    require_host_permission(await allowed_hosts_for(db, p, row), row.host, "delete-vfolder")
    if row.status.startswith("delete-"):
        return loaded
    if row.status not in ("ready", "error"):
        raise invalid_state(f"the folder is {row.status}")
    await require_unmounted(db, loaded, "delete")
    set_status(row, names.TRASH)
    await db.flush()
    return loaded


async def restore(db: AsyncSession, p: Principal, vfolder_id: uuid.UUID) -> Loaded:
    loaded = await load(db, p, vfolder_id, for_update=True)
    require_manager(p, loaded.access)
    row = loaded.row
    if row.status == names.TRASH:
        await require_free_name(db, owner_of(loaded), row.name, except_id=row.id)
        set_status(row, "ready")
        await db.flush()
    elif row.status.startswith("delete-"):
        raise invalid_state("the folder's deletion has begun; it cannot be restored")
    return loaded


async def purge(
    sessions: async_sessionmaker[AsyncSession],
    p: Principal,
    vfolder_id: uuid.UUID,
    proxies: StorageProxies,
) -> Loaded:
    """DELETE_PENDING (or DELETE_ERROR) -> DELETE_ONGOING, delete on the proxy,
    then DELETE_COMPLETE; a proxy failure leaves DELETE_ERROR for a retry."""
    async with sessions() as db, db.begin():
        loaded = await load(db, p, vfolder_id, for_update=True)
        require_manager(p, loaded.access)
        row = loaded.row
        require_host_permission(await allowed_hosts_for(db, p, row), row.host, "delete-vfolder")
        if row.status in names.PURGING:
            return loaded
        if row.status not in (names.TRASH, "delete-error"):
            raise invalid_state("only folders in the trash can be purged")
        set_status(row, "delete-ongoing")
    try:
        await proxies.call(
            host_of(row).proxy, "DeleteVFolder", spb.DeleteVFolderRequest(vfolder=vfolder_ref(row))
        )
    except BaiError:
        async with sessions() as db, db.begin():
            await set_status_by_id(db, row.id, "delete-error")
        raise
    async with sessions() as db, db.begin():
        await set_status_by_id(db, row.id, "delete-complete")
        return await load(db, p, vfolder_id)
