"""Who may do what with a folder, as pure functions over the caller and the folder.

Visibility first: a folder the caller cannot see is NOT_FOUND. Then the role
(monitors never write: READ_ONLY_ROLE), then the strength of the caller's
permission (SCOPE_FORBIDDEN), then the storage host's permissions
(HOST_PERMISSION_DENIED).
"""

from __future__ import annotations

import uuid
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from enum import IntEnum
from typing import Any

from bai.common.errors import NotFound, PermissionDenied
from bai.manager.auth.access import can_administer_domain, can_read_domain_objects
from bai.manager.auth.principal import Principal, Role


class Perm(IntEnum):
    """Mount permissions, ordered by strength."""

    RO = 1
    RW = 2
    WD = 3

    @classmethod
    def of(cls, name: str) -> Perm:
        return {"ro": cls.RO, "rw": cls.RW, "wd": cls.WD}[name]

    @property
    def label(self) -> str:
        return {Perm.RO: "ro", Perm.RW: "rw", Perm.WD: "wd"}[self]


@dataclass(frozen=True)
class FolderFacts:
    """What permission decisions need to know about a folder."""

    ownership: str  # "user" or "group"
    user_id: uuid.UUID | None
    project_id: uuid.UUID | None
    domain_name: str
    # Project folders: what members get unless a share overrides it.
    permission: str


@dataclass(frozen=True)
class FolderAccess:
    permission: Perm
    # Owns it, or administers the project that owns it.
    is_owner: bool
    # May change, trash, purge and share it (owner, or admin of its domain).
    manages: bool


# Every permission a vfolder host entry (allowed_vfolder_hosts) may grant.
HOST_PERMISSIONS = frozenset(
    {
        "create-vfolder",
        "modify-vfolder",
        "delete-vfolder",
        "mount-in-session",
        "upload-file",
        "download-file",
        "invite-others",
        "set-user-specific-permission",
    }
)


def access_of(p: Principal, folder: FolderFacts, share: str | None) -> FolderAccess | None:
    """The caller's access to `folder` (`share`: their per-user permission row),
    or None when they may not even see it."""
    admin = can_administer_domain(p, folder.domain_name)
    if folder.ownership == "group":
        if admin:
            return FolderAccess(Perm.WD, is_owner=True, manages=True)
        if folder.project_id is not None and folder.project_id in p.project_ids:
            return FolderAccess(Perm.of(share or folder.permission), is_owner=False, manages=False)
    else:
        if folder.user_id == p.user_id:
            return FolderAccess(Perm.WD, is_owner=True, manages=True)
        if admin:
            return FolderAccess(Perm.WD, is_owner=False, manages=True)
        if share is not None:
            return FolderAccess(Perm.of(share), is_owner=False, manages=False)
    if can_read_domain_objects(p, folder.domain_name):
        return FolderAccess(Perm.RO, is_owner=False, manages=False)
    return None


def not_found() -> NotFound:
    return NotFound("vfolder not found")


def require(
    p: Principal, access: FolderAccess | None, needed: Perm, *, write: bool
) -> FolderAccess:
    """The caller sees the folder, may write if `write`, and holds at least `needed`."""
    if access is None:
        raise not_found()
    if write:
        require_not_monitor(p)
    if access.permission < needed:
        raise PermissionDenied(
            f"this needs {needed.label} permission on the folder; you have "
            f"{access.permission.label}",
            reason="SCOPE_FORBIDDEN",
        )
    return access


def require_manager(p: Principal, access: FolderAccess | None) -> FolderAccess:
    """Changing the folder itself: its owner, or an admin of its domain."""
    granted = require(p, access, Perm.WD, write=True)
    if not granted.manages:
        raise PermissionDenied("only the folder's owner may do this", reason="SCOPE_FORBIDDEN")
    return granted


def require_not_monitor(p: Principal) -> None:
    if p.role is Role.MONITOR:
        raise PermissionDenied("monitors cannot change anything", reason="READ_ONLY_ROLE")


def narrowed(granted: Perm, requested: Perm | None) -> Perm:
    """A mount's permission: the requested one when it is not wider than granted."""
    if requested is None:
        return granted
    if requested > granted:
        raise PermissionDenied(
            f"{requested.label} is wider than your {granted.label} permission",
            reason="SCOPE_FORBIDDEN",
        )
    return requested


HostPermissions = dict[str, frozenset[str]]


def merge_host_permissions(sources: Iterable[Mapping[str, Any]]) -> HostPermissions:
    """allowed_vfolder_hosts of the domain, projects and keypair policies, united
    host by host (upstream's rule)."""
    merged: dict[str, set[str]] = {}
    for source in sources:
        for host, perms in (source or {}).items():
            if isinstance(perms, list | tuple | set | frozenset):
                merged.setdefault(host, set()).update(str(x) for x in perms)
    return {host: frozenset(perms) for host, perms in merged.items()}


def require_host_permission(allowed: HostPermissions, host: str, permission: str) -> None:
    if permission not in allowed.get(host, frozenset()):
        raise PermissionDenied(
            f"you lack the {permission!r} permission on storage host {host!r}",
            reason="HOST_PERMISSION_DENIED",
            metadata={"host": host, "permission": permission},
        )
