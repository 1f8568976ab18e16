"""Resolving a session's vfolder mounts (CreateSessionRequest.mounts).

    mounts = await resolve_mounts(db, owner, request.mounts, proxies)

Each request names a folder the session owner can access as a user (own,
project, shared: admin powers do not extend to mounting others' folders),
with the host's mount-in-session permission; the permission may be narrowed,
never widened. The answer carries the path agents bind (from the proxy's
GetVFolderMount) and the mount point in the container. Bad input is one
INVALID_FIELD listing every bad mount; a folder the owner cannot see is
NOT_FOUND; a folder not READY is INVALID_STATE.
"""

from __future__ import annotations

import dataclasses
import posixpath
from collections.abc import Sequence

from sqlalchemy import and_, or_, select
from sqlalchemy.ext.asyncio import AsyncSession

from bai.api.common.v1 import session_pb2 as common_session
from bai.api.manager.v1 import session_pb2
from bai.api.storage.v1 import storage_pb2 as spb
from bai.common.errors import InvalidArgument
from bai.manager.auth.principal import Principal, Role
from bai.manager.db.storage import DELETED_STATUSES, VFolderPermissionRow, VFolderRow
from bai.manager.validation import Violations
from bai.manager.vfolders import names, paths
from bai.manager.vfolders.creation import vfolder_ref
from bai.manager.vfolders.hosts import allowed_hosts_for
from bai.manager.vfolders.lifecycle import require_ready
from bai.manager.vfolders.permissions import Perm, narrowed, not_found, require_host_permission
from bai.manager.vfolders.records import Loaded, folder_id, host_of, load, now
from bai.manager.vfolders.storage_client import StorageProxies

WORK_DIR = "/home/work"
# Top-level directories a folder may not be mounted over (upstream's reserved list).
RESERVED_TOP = frozenset(
    {"bin", "boot", "dev", "etc", "home", "lib", "lib64", "media", "mnt", "opt", "proc"}
    | {"root", "run", "sbin", "srv", "sys", "tmp", "usr", "var"}
)
# Under /home/work, entries the kernel runner owns.
RESERVED_IN_WORK = frozenset({".terminfo", ".jupyter", ".tmux.conf", ".ssh", ".bashrc"})


def kernel_path(v: Violations, field: str, requested: str, folder_name: str) -> str:
    """The mount point: "/home/work/<name>" by default; relative paths are under
    /home/work; absolute ones must not cover a system directory."""
    raw = requested or folder_name
    if "\x00" in raw or "\\" in raw or len(raw) > 1024:
        v.add(field, "must be a path without NUL characters or backslashes")
        return ""
    if ".." in raw.split("/"):
        v.add(field, "must not contain '..'")
        return ""
    path = posixpath.normpath(raw if raw.startswith("/") else f"{WORK_DIR}/{raw}")
    parts = path.strip("/").split("/")
    if path.startswith(WORK_DIR + "/"):
        if parts[2] in RESERVED_IN_WORK:
            v.add(field, f"{parts[2]!r} under {WORK_DIR} is reserved")
            return ""
        return path
    if path == WORK_DIR or path == "/" or parts[0] in RESERVED_TOP:
        v.add(field, f"{path!r} is a reserved path")
        return ""
    return path


async def _by_name(db: AsyncSession, owner: Principal, name: str) -> VFolderRow | None:
    """Own folders first, then project folders, then shared ones."""
    shared = select(VFolderPermissionRow.vfolder_id).where(
        VFolderPermissionRow.user_id == owner.user_id
    )
    rows = list(
        await db.scalars(
            select(VFolderRow).where(
                VFolderRow.name == name,
                VFolderRow.status.not_in(DELETED_STATUSES),
                or_(
                    and_(VFolderRow.ownership_type == "user", VFolderRow.user_id == owner.user_id),
                    and_(
                        VFolderRow.ownership_type == "group",
                        VFolderRow.project_id.in_(list(owner.project_ids)),
                    ),
                    VFolderRow.id.in_(shared.scalar_subquery()),
                ),
            )
        )
    )

    def tier(row: VFolderRow) -> int:
        if row.user_id == owner.user_id:
            return 0
        return 1 if row.ownership_type == "group" else 2

    rows.sort(key=lambda r: (tier(r), str(r.id)))
    if len(rows) > 1 and tier(rows[0]) == tier(rows[1]):
        raise InvalidArgument.field("mounts", f"{name!r} names several folders; use vfolder_id")
    return rows[0] if rows else None


async def _resolve(
    db: AsyncSession, owner: Principal, request: session_pb2.SessionMountRequest, field: str
) -> Loaded:
    if request.vfolder_id:
        v = Violations()
        found = folder_id(v, request.vfolder_id, f"{field}.vfolder_id")
        v.raise_if_any()
        return await load(db, owner, found)
    row = await _by_name(db, owner, request.vfolder_name)
    if row is None:
        raise not_found()
    return await load(db, owner, row.id)


def _check_request(v: Violations, i: int, request: session_pb2.SessionMountRequest) -> None:
    field = f"mounts[{i}]"
    if bool(request.vfolder_id) == bool(request.vfolder_name):
        v.add(field, "name exactly one of vfolder_id and vfolder_name")
    if request.permission and request.permission not in names.PERMISSION_NAME:
        v.add(f"{field}.permission", "is not a MountPermission")
    paths.relpath(v, f"{field}.subpath", request.subpath, root_ok=True)


async def resolve_mounts(
    db: AsyncSession,
    owner: Principal,
    requests: Sequence[session_pb2.SessionMountRequest],
    proxies: StorageProxies,
) -> list[common_session.VFolderMount]:
    """The session owner's mounts, checked, with host paths; marks the folders used."""
    v = Violations()
    if len(requests) > 64:
        v.add("mounts", "at most 64 mounts")
    for i, request in enumerate(requests):
        _check_request(v, i, request)
    v.raise_if_any()
    as_user = dataclasses.replace(owner, role=Role.USER)
    mounts: list[common_session.VFolderMount] = []
    for i, request in enumerate(requests):
        loaded = await _resolve(db, as_user, request, f"mounts[{i}]")
        row = loaded.row
        require_ready(loaded)
        require_host_permission(
            await allowed_hosts_for(db, owner, row), row.host, "mount-in-session"
        )
        wanted = Perm.of(names.PERMISSION_NAME[request.permission]) if request.permission else None
        permission = narrowed(loaded.access.permission, wanted)
        target = kernel_path(v, f"mounts[{i}].mount_path", request.mount_path, row.name)
        if target and target in {m.kernel_path for m in mounts}:
            v.add(f"mounts[{i}].mount_path", f"{target!r} is already a mount point")
        v.raise_if_any()
        reply = await proxies.call(
            host_of(row).proxy,
            "GetVFolderMount",
            spb.GetVFolderMountRequest(vfolder=vfolder_ref(row), subpath=request.subpath),
        )
        row.last_used_at = now()
        mounts.append(
            common_session.VFolderMount(
                vfolder_id=str(row.id),
                name=row.name,
                host=row.host,
                quota_scope=names.quota_scope(row.quota_scope_id),
                subpath=request.subpath.rstrip("/"),
                host_path=reply.path,
                kernel_path=target,
                permission=names.PERMISSION[permission.label],
                usage_mode=names.USAGE_MODE.get(row.usage_mode, names.NO_USAGE_MODE),
            )
        )
    return mounts
