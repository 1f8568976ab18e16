"""CloneVFolder: a new CLONING folder now, filled by a background task."""

from __future__ import annotations

import uuid
from dataclasses import dataclass

from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from bai.api.storage.v1 import storage_pb2 as spb
from bai.common.errors import BaiError, FailedPrecondition, PermissionDenied
from bai.manager.auth.principal import Principal
from bai.manager.bgtasks import BackgroundTasks, Progress, TaskRecord
from bai.manager.vfolders.creation import NewFolder, insert_folder, resolve_owner, vfolder_ref
from bai.manager.vfolders.hosts import allowed_hosts
from bai.manager.vfolders.lifecycle import require_ready
from bai.manager.vfolders.permissions import (
    FolderAccess,
    Perm,
    require,
    require_host_permission,
)
from bai.manager.vfolders.records import Loaded, host_of, load, set_status_by_id
from bai.manager.vfolders.storage_client import HostRef, StorageProxies, unknown_host


@dataclass(frozen=True)
class CloneSpec:
    target_name: str
    # "" for the source's host.
    target_host: str
    # "" for the source's.
    usage_mode: str
    cloneable: bool


async def begin(
    db: AsyncSession,
    p: Principal,
    source_id: uuid.UUID,
    spec: CloneSpec,
    proxies: StorageProxies,
) -> tuple[Loaded, Loaded]:
    """(source, target): the target row is written CLONING in the caller's name."""
    source = await load(db, p, source_id)
    require(p, source.access, Perm.RO, write=True)
    if not (source.row.cloneable or source.access.is_owner):
        raise PermissionDenied("the folder is not cloneable", reason="NOT_CLONEABLE")
    require_ready(source)
    source_host = host_of(source.row)
    target_host = HostRef.parse(spec.target_host) if spec.target_host else source_host
    if target_host is None or target_host.proxy not in proxies.names():
        raise unknown_host(spec.target_host)
    if target_host.proxy != source_host.proxy:
        raise FailedPrecondition(
            "folders are cloned only between volumes of one storage proxy",
            reason="VOLUME_CAPABILITY_MISSING",
        )
    owner = await resolve_owner(db, p, None)
    require_host_permission(await allowed_hosts(db, p), str(target_host), "create-vfolder")
    new = NewFolder(
        name=spec.target_name,
        host=str(target_host),
        project_id=None,
        usage_mode=spec.usage_mode or source.row.usage_mode,
        permission="wd",
        cloneable=spec.cloneable,
    )
    row = await insert_folder(db, p, owner, new, target_host, "cloning")
    return source, Loaded(row, FolderAccess(Perm.WD, is_owner=True, manages=True))


async def start_copy(
    sessions: async_sessionmaker[AsyncSession],
    tasks: BackgroundTasks,
    proxies: StorageProxies,
    p: Principal,
    source: Loaded,
    target: Loaded,
) -> TaskRecord:
    """Copy on the proxy in the background; the target becomes READY or ERROR."""
    proxy = host_of(source.row).proxy
    request = spb.CloneVFolderRequest(
        source=vfolder_ref(source.row), target=vfolder_ref(target.row)
    )
    target_id = target.row.id

    async def work(progress: Progress) -> dict[str, str]:
        total = 0
        try:
            usage = await proxies.call(
                proxy, "GetVFolderUsage", spb.GetVFolderUsageRequest(vfolder=request.source)
            )
            total = usage.used_bytes
            await progress.update(0, total, "copying")
            copied = await proxies.call(proxy, "CloneVFolder", request, deadline=False)
        except BaiError:
            async with sessions() as db, db.begin():
                await set_status_by_id(db, target_id, "error")
            raise
        async with sessions() as db, db.begin():
            await set_status_by_id(db, target_id, "ready")
        await progress.update(
            copied.copied_bytes,
            max(total, copied.copied_bytes),
            f"copied {copied.copied_files} files",
        )
        return {"vfolder_id": str(target_id)}

    return await tasks.start("vfolder.clone", p, work)
