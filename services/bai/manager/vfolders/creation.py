"""Creating folders: owner, host, policies, name, then the directory on the proxy."""

from __future__ import annotations

import uuid
from dataclasses import dataclass

from sqlalchemy import func, select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncSession

from bai.api.storage.v1 import storage_pb2 as spb
from bai.common.errors import AlreadyExists, PermissionDenied, ResourceExhausted
from bai.manager.admin.users import reference_not_found
from bai.manager.auth.access import can_administer_domain
from bai.manager.auth.principal import Principal, Role
from bai.manager.db.identity import ProjectRow, UserRow
from bai.manager.db.policies import ProjectResourcePolicyRow, UserResourcePolicyRow
from bai.manager.db.storage import DELETED_STATUSES, VFolderRow
from bai.manager.vfolders import names
from bai.manager.vfolders.hosts import allowed_hosts
from bai.manager.vfolders.permissions import (
    FolderAccess,
    Perm,
    require_host_permission,
    require_not_monitor,
)
from bai.manager.vfolders.records import Loaded, host_of, now
from bai.manager.vfolders.storage_client import HostRef, StorageProxies, unknown_host


@dataclass(frozen=True)
class NewFolder:
    name: str
    # "" for the default host.
    host: str
    project_id: uuid.UUID | None
    usage_mode: str
    # Project folders: members' permission.
    permission: str
    cloneable: bool


@dataclass(frozen=True)
class Owner:
    ownership: str  # "user" or "group"
    owner_id: uuid.UUID
    domain_name: str
    max_vfolder_count: int


def name_taken() -> AlreadyExists:
    return AlreadyExists("the owner already has a live folder of that name")


def vfolder_ref(row: VFolderRow) -> spb.VFolderRef:
    return spb.VFolderRef(
        volume=host_of(row).volume,
        quota_scope=names.quota_scope(row.quota_scope_id),
        folder_id=str(row.id),
    )


async def resolve_owner(db: AsyncSession, p: Principal, project_id: uuid.UUID | None) -> Owner:
    """The caller, or a project they administer; the owner row is locked so that
    concurrent creations count each other."""
    if project_id is None:
        user = await db.scalar(select(UserRow).where(UserRow.id == p.user_id).with_for_update())
        assert user is not None  # the caller authenticated a moment ago
        limit = await db.scalar(
            select(UserResourcePolicyRow.max_vfolder_count).where(
                UserResourcePolicyRow.name == user.resource_policy
            )
        )
        return Owner("user", user.id, user.domain_name, limit or 0)
    project = await db.scalar(
        select(ProjectRow).where(ProjectRow.id == project_id).with_for_update()
    )
    visible = project is not None and (
        p.role is Role.SUPERADMIN or project.domain_name == p.domain_name
    )
    if project is None or not visible:
        raise reference_not_found("project")
    if not can_administer_domain(p, project.domain_name):
        raise PermissionDenied("only admins create project folders", reason="SCOPE_FORBIDDEN")
    limit = await db.scalar(
        select(ProjectResourcePolicyRow.max_vfolder_count).where(
            ProjectResourcePolicyRow.name == project.resource_policy
        )
    )
    return Owner("group", project.id, project.domain_name, limit or 0)


async def require_room(db: AsyncSession, owner: Owner) -> None:
    """max_vfolder_count (0: unlimited); folders in the trash still count."""
    if not owner.max_vfolder_count:
        return
    column = VFolderRow.project_id if owner.ownership == "group" else VFolderRow.user_id
    count = await db.scalar(
        select(func.count())
        .select_from(VFolderRow)
        .where(column == owner.owner_id, VFolderRow.status != "delete-complete")
    )
    if (count or 0) >= owner.max_vfolder_count:
        raise ResourceExhausted(
            f"the owner already has {count} folders (at most {owner.max_vfolder_count})",
            reason="QUOTA_EXCEEDED",
            metadata={"limit": str(owner.max_vfolder_count)},
        )


async def require_free_name(
    db: AsyncSession, owner: Owner, name: str, *, except_id: uuid.UUID | None = None
) -> None:
    column = VFolderRow.project_id if owner.ownership == "group" else VFolderRow.user_id
    query = select(VFolderRow.id).where(
        column == owner.owner_id,
        VFolderRow.name == name,
        VFolderRow.status.not_in(DELETED_STATUSES),
    )
    if except_id is not None:
        query = query.where(VFolderRow.id != except_id)
    if await db.scalar(query.limit(1)) is not None:
        raise name_taken()


def pick_host(proxies: StorageProxies, requested: str) -> HostRef:
    host = requested or proxies.default_host
    ref = HostRef.parse(host)
    if ref is None:
        raise unknown_host(host)
    proxies.settings(ref.proxy)  # an unknown proxy is REFERENCE_NOT_FOUND
    return ref


async def insert_folder(
    db: AsyncSession,
    p: Principal,
    owner: Owner,
    spec: NewFolder,
    host: HostRef,
    status: str,
) -> VFolderRow:
    """The row, flushed; ALREADY_EXISTS when the name is taken meanwhile."""
    await require_room(db, owner)
    await require_free_name(db, owner, spec.name)
    row = VFolderRow(
        id=uuid.uuid4(),
        name=spec.name,
        host=str(host),
        quota_scope_id=names.quota_scope_id(owner.ownership, owner.owner_id),
        usage_mode=spec.usage_mode,
        permission=spec.permission if owner.ownership == "group" else "wd",
        ownership_type=owner.ownership,
        user_id=owner.owner_id if owner.ownership == "user" else None,
        project_id=owner.owner_id if owner.ownership == "group" else None,
        domain_name=owner.domain_name,
        cloneable=spec.cloneable,
        status=status,
        creator=p.email,
        status_changed_at=now(),
    )
    db.add(row)
    try:
        async with db.begin_nested():
            await db.flush()
    except IntegrityError as exc:
        raise name_taken() from exc
    return row


async def create(
    db: AsyncSession, p: Principal, spec: NewFolder, proxies: StorageProxies
) -> Loaded:
    """A READY folder; the directory is made on the proxy before the row commits,
    so a refused directory leaves no row."""
    require_not_monitor(p)
    owner = await resolve_owner(db, p, spec.project_id)
    host = pick_host(proxies, spec.host)
    allowed = await allowed_hosts(db, p, [owner.owner_id] if owner.ownership == "group" else None)
    require_host_permission(allowed, str(host), "create-vfolder")
    row = await insert_folder(db, p, owner, spec, host, "ready")
    await proxies.call(
        host.proxy, "CreateVFolder", spb.CreateVFolderRequest(vfolder=vfolder_ref(row))
    )
    return Loaded(row, FolderAccess(Perm.WD, is_owner=True, manages=True))
