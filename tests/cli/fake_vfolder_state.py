"""State of the fake VFolderService (tests.cli.fake_vfolder_service): folders in memory,
their files in the fake storage proxy's directories, shares, invitations, clone tasks.

The caller is tests.client.fakes.IDENTITY (admin@bai.local, user u-1). Known other
users: alice@example.com and bob@example.com.
"""

from __future__ import annotations

import posixpath
import re
import uuid
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import grpc

from bai.api.common.v1 import storage_pb2 as common
from bai.api.manager.v1 import bgtask_pb2, vfolder_pb2
from tests.cli.fake_vfolder_files import Storage
from tests.client.fakes import IDENTITY, fail

ME = IDENTITY.user_id
USERS = {"alice@example.com": "u-alice", "bob@example.com": "u-bob", IDENTITY.email: ME}
NAME = re.compile(r"[A-Za-z0-9._-]{1,64}")
LIVE = (vfolder_pb2.FOLDER_STATUS_READY, vfolder_pb2.FOLDER_STATUS_CLONING)
TRASH = (vfolder_pb2.FOLDER_STATUS_DELETE_PENDING,)
RW = common.MOUNT_PERMISSION_READ_WRITE
WD = common.MOUNT_PERMISSION_READ_WRITE_DELETE


@dataclass
class Folders:
    storage: Storage
    file_service_address: str = ""
    folders: dict[str, vfolder_pb2.VFolder] = field(default_factory=dict)
    shares: dict[str, dict[str, int]] = field(default_factory=dict)  # folder -> email -> perm
    invitations: dict[str, vfolder_pb2.VFolderInvitation] = field(default_factory=dict)
    tasks: dict[str, list[bgtask_pb2.WatchTaskResponse]] = field(default_factory=dict)
    ttl_seconds: float = 3600.0

    def add(self, name: str, owner: str = ME, **fields: Any) -> vfolder_pb2.VFolder:
        folder = vfolder_pb2.VFolder(
            id=str(uuid.uuid4()),
            name=name,
            host=fields.pop("host", "") or "local:volume1",
            ownership_type=vfolder_pb2.FOLDER_OWNERSHIP_TYPE_USER,
            user_id=owner,
            creator=next(e for e, u in USERS.items() if u == owner),
            permission=WD,
            status=fields.pop("status", vfolder_pb2.FOLDER_STATUS_READY),
            **fields,
        )
        folder.created_at.FromSeconds(1_700_000_000 + len(self.folders))
        self.folders[folder.id] = folder
        self.storage.folder(folder.id).mkdir(parents=True)
        return folder

    def view(self, folder: vfolder_pb2.VFolder) -> vfolder_pb2.VFolder | None:
        """The folder as the caller sees it, or None when it is not visible."""
        seen = vfolder_pb2.VFolder()
        seen.CopyFrom(folder)
        if folder.user_id == ME:
            seen.is_owner, seen.caller_permission = True, WD
            return seen
        perm = self.shares.get(folder.id, {}).get(IDENTITY.email)
        if perm is None:
            return None
        seen.caller_permission = perm  # type: ignore[assignment]
        return seen

    def get(self, folder_id: str, statuses: tuple[int, ...] = LIVE) -> vfolder_pb2.VFolder:
        folder = self.folders.get(folder_id)
        seen = self.view(folder) if folder is not None else None
        if seen is None or (statuses and seen.status not in statuses):
            raise fail(grpc.StatusCode.NOT_FOUND, f"vfolder {folder_id} not found")
        return seen

    def needs(self, folder: vfolder_pb2.VFolder, perm: int) -> None:
        if folder.caller_permission < perm:
            raise fail(grpc.StatusCode.PERMISSION_DENIED, "permission too weak", "SCOPE_FORBIDDEN")

    def name_taken(self, name: str, owner: str = ME) -> None:
        for f in self.folders.values():
            if f.name == name and f.user_id == owner and f.status in LIVE:
                raise fail(grpc.StatusCode.ALREADY_EXISTS, f"vfolder {name} exists")

    def ticket(self, folder: vfolder_pb2.VFolder, path: str, op: str) -> Any:
        token = self.storage.issue(folder.id, path, op, self.ttl_seconds)
        ticket = vfolder_pb2.TransferTicket(
            token=token, file_service_address=self.file_service_address
        )
        ticket.expires_at.FromSeconds(int(self.storage.tokens[token].expires))
        return ticket


def clean(path: str) -> str:
    if path.startswith("/") or "\x00" in path or "\\" in path:
        raise fail(
            grpc.StatusCode.INVALID_ARGUMENT,
            "invalid request",
            "INVALID_FIELD",
            violations=[("path", "must be relative to the folder")],
        )
    normal = posixpath.normpath(path) if path else ""
    if normal.startswith(".."):
        raise fail(grpc.StatusCode.INVALID_ARGUMENT, "path escapes the folder", "INVALID_FIELD")
    return "" if normal == "." else normal


def entry(root: Path, item: Path) -> common.FileEntry:
    st = item.lstat()
    kind = common.FILE_TYPE_DIRECTORY if item.is_dir() else common.FILE_TYPE_FILE
    e = common.FileEntry(
        name=item.name,
        path=item.relative_to(root).as_posix(),
        type=kind,
        size=0 if item.is_dir() else st.st_size,
        mode=st.st_mode & 0o777,
    )
    e.modified_at.FromSeconds(1_700_000_000)
    return e


def invite_from_bob(state: Folders) -> vfolder_pb2.VFolderInvitation:
    """bob's folder "bobs-data" with a pending invitation (read-only) to the caller."""
    folder = state.add("bobs-data", owner="u-bob")
    inv = vfolder_pb2.VFolderInvitation(
        id=str(uuid.uuid4()),
        vfolder_id=folder.id,
        vfolder_name=folder.name,
        inviter_email="bob@example.com",
        invitee_email=IDENTITY.email,
        permission=common.MOUNT_PERMISSION_READ_ONLY,
        status=vfolder_pb2.FOLDER_INVITATION_STATUS_PENDING,
    )
    inv.created_at.FromSeconds(1_700_000_000)
    state.invitations[inv.id] = inv
    return inv
