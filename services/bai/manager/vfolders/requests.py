"""VFolderService requests checked field by field into domain values (one
INVALID_FIELD listing every bad field)."""

from __future__ import annotations

import uuid
from datetime import timedelta

from bai.api.common.v1 import storage_pb2 as common
from bai.api.manager.v1 import vfolder_pb2 as pb
from bai.manager.validation import Violations
from bai.manager.vfolders import names, paths
from bai.manager.vfolders.clone import CloneSpec
from bai.manager.vfolders.creation import NewFolder
from bai.manager.vfolders.lifecycle import FolderChanges
from bai.manager.vfolders.listing import FolderFilter
from bai.manager.vfolders.records import folder_id

MAX_TTL = timedelta(hours=24)
DEFAULT_TTL = timedelta(hours=1)
MAX_EMAILS = 100
UPDATABLE = ("name", "permission", "cloneable", "usage_mode")


def _enum(v: Violations, field: str, value: int, table: dict[int, str], what: str) -> str | None:
    if value == 0:
        return None
    if value not in table:
        v.add(field, f"is not a {what}")
        return None
    return table[value]


def _host(v: Violations, field: str, value: str) -> None:
    if value and (len(value) > 128 or value.count(":") != 1 or not value.isprintable()):
        v.add(field, 'must be a storage host "<proxy>:<volume>"')


def create(request: pb.CreateVFolderRequest) -> NewFolder:
    v = Violations()
    paths.folder_name(v, "name", request.name)
    _host(v, "host", request.host)
    project = v.uuid("project_id", request.project_id) if request.project_id else None
    mode = _enum(v, "usage_mode", request.usage_mode, names.USAGE_MODE_NAME, "FolderUsageMode")
    perm = _enum(v, "permission", request.permission, names.PERMISSION_NAME, "MountPermission")
    v.request_id(request.request_id)
    v.raise_if_any()
    return NewFolder(
        name=request.name,
        host=request.host,
        project_id=project,
        usage_mode=mode or "general",
        permission=perm or "rw",
        cloneable=request.cloneable,
    )


def list_filter(request: pb.ListVFoldersRequest) -> tuple[FolderFilter, int]:
    v = Violations()
    size = v.page_size(request.page_size)
    ownership = _enum(
        v, "ownership_type", request.ownership_type, names.OWNERSHIP_NAME, "FolderOwnershipType"
    )
    project = v.uuid("project_id", request.project_id) if request.project_id else None
    mode = _enum(v, "usage_mode", request.usage_mode, names.USAGE_MODE_NAME, "FolderUsageMode")
    _host(v, "host", request.host)
    statuses: list[str] = []
    for i, status in enumerate(request.statuses):
        name = _enum(v, f"statuses[{i}]", status, names.STATUS_NAME, "FolderStatus")
        if name:
            statuses.append(name)
    user = v.uuid("user_id", request.user_id) if request.user_id else None
    if user is not None and not request.all_users:
        v.add("user_id", "filters only with all_users")
    v.raise_if_any()
    f = FolderFilter(
        ownership=ownership,
        project_id=project,
        usage_mode=mode,
        host=request.host,
        statuses=tuple(sorted(set(statuses))) or names.LISTED_BY_DEFAULT,
        all_users=request.all_users,
        user_id=user,
    )
    return f, size


def update(request: pb.UpdateVFolderRequest) -> tuple[uuid.UUID, FolderChanges]:
    v = Violations()
    target = folder_id(v, request.vfolder.id, "vfolder.id")
    mask = v.mask(request.update_mask.paths, UPDATABLE)
    folder = request.vfolder
    name = perm = mode = None
    if "name" in mask:
        paths.folder_name(v, "vfolder.name", folder.name)
        name = folder.name
    if "permission" in mask:
        perm = _enum(v, "vfolder.permission", folder.permission, names.PERMISSION_NAME, "perm")
        if perm is None:
            v.add("vfolder.permission", "is required")
    if "usage_mode" in mask:
        mode = _enum(v, "vfolder.usage_mode", folder.usage_mode, names.USAGE_MODE_NAME, "mode")
        if mode is None:
            v.add("vfolder.usage_mode", "is required")
    v.raise_if_any()
    cloneable = folder.cloneable if "cloneable" in mask else None
    return target, FolderChanges(name, perm, cloneable, mode)


def clone(request: pb.CloneVFolderRequest) -> tuple[uuid.UUID, CloneSpec]:
    v = Violations()
    source = folder_id(v, request.vfolder_id)
    paths.folder_name(v, "target_name", request.target_name)
    _host(v, "target_host", request.target_host)
    mode = _enum(v, "usage_mode", request.usage_mode, names.USAGE_MODE_NAME, "FolderUsageMode")
    v.request_id(request.request_id)
    v.raise_if_any()
    return source, CloneSpec(
        request.target_name, request.target_host, mode or "", request.cloneable
    )


def ttl(
    v: Violations, request: pb.RequestUploadTokenRequest | pb.RequestDownloadTokenRequest
) -> timedelta:
    if not request.HasField("ttl"):
        return DEFAULT_TTL
    value = request.ttl.ToTimedelta()
    if not timedelta(seconds=1) <= value <= MAX_TTL:
        v.add("ttl", "must be between 1 second and 24 hours")
    return value


def emails(v: Violations, field: str, values: list[str]) -> list[str]:
    if not 1 <= len(values) <= MAX_EMAILS:
        v.add(field, f"name 1-{MAX_EMAILS} emails")
    for i, value in enumerate(values):
        v.email(f"{field}[{i}]", value)
    if len({e.lower() for e in values}) != len(values):
        v.add(field, "has duplicates")
    return list(values)


def permission(v: Violations, value: int, *, default: str | None) -> str:
    name = _enum(v, "permission", value, names.PERMISSION_NAME, "MountPermission")
    if name is None and default is None and value == 0:
        v.add("permission", "is required")
    return name or default or "ro"


def quota_scope(v: Violations, scope: common.QuotaScope) -> None:
    if scope.type not in (common.QUOTA_SCOPE_TYPE_USER, common.QUOTA_SCOPE_TYPE_PROJECT):
        v.add("quota_scope.type", "must be USER or PROJECT")
    v.uuid("quota_scope.id", scope.id)


def quota_host(v: Violations, host: str) -> None:
    if not host:
        v.add("host", "is required")
    _host(v, "host", host)
