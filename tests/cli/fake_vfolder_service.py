"""A fake VFolderService (and BackgroundTaskService for clones) for SDK and CLI tests.

It follows proto/bai/api/manager/v1/vfolder.proto with the state of
tests.cli.fake_vfolder_state; a transfer ticket points at the fake FileService
(tests.cli.fake_vfolder_files). Cloning to a name starting with "fail" ends with a
FAILED task (see tests.cli.fake_vfolder_backend).
"""

from __future__ import annotations

import shutil
import uuid
from typing import Any

import grpc

from bai.api.common.v1 import storage_pb2 as common
from bai.api.manager.v1 import (
    bgtask_pb2,
    vfolder_pb2,
    vfolder_pb2_grpc,
)
from tests.cli.fake_vfolder_files import ARCHIVE, DOWNLOAD, UPLOAD
from tests.cli.fake_vfolder_state import (
    LIVE,
    NAME,
    RW,
    TRASH,
    USERS,
    WD,
    Folders,
    clean,
    entry,
)
from tests.client.fakes import IDENTITY, fail, handler


class FakeVFolders(vfolder_pb2_grpc.VFolderServiceServicer):
    SERVICE = "bai.api.manager.v1.VFolderService"

    def __init__(self, state: Folders) -> None:
        self.state = state
        self.fake = state.storage.fake

    @handler
    def CreateVFolder(self, request: Any, context: Any) -> Any:
        if not NAME.fullmatch(request.name) or request.name.startswith("."):
            raise fail(
                grpc.StatusCode.INVALID_ARGUMENT,
                "invalid request",
                "INVALID_FIELD",
                violations=[("name", "must be 1-64 characters of [A-Za-z0-9._-]")],
            )
        if request.host and not request.host.startswith("local:"):
            raise fail(grpc.StatusCode.NOT_FOUND, f"no host {request.host}", "REFERENCE_NOT_FOUND")
        self.state.name_taken(request.name)
        folder = self.state.add(
            request.name,
            host=request.host,
            usage_mode=request.usage_mode or common.FOLDER_USAGE_MODE_GENERAL,
            cloneable=request.cloneable,
        )
        if request.project_id:
            folder.ownership_type = vfolder_pb2.FOLDER_OWNERSHIP_TYPE_PROJECT
            folder.project_id, folder.permission = request.project_id, request.permission or RW
        return vfolder_pb2.CreateVFolderResponse(vfolder=self.state.get(folder.id))

    @handler
    def GetVFolder(self, request: Any, context: Any) -> Any:
        folder = self.state.get(request.vfolder_id, ())
        shares = [
            vfolder_pb2.VFolderShare(user_id=USERS[email], email=email, permission=perm)  # type: ignore[arg-type]
            for email, perm in sorted(self.state.shares.get(folder.id, {}).items())
        ]
        return vfolder_pb2.GetVFolderResponse(
            vfolder=folder, shares=shares if folder.is_owner else []
        )

    @handler
    def ListVFolders(self, request: Any, context: Any) -> Any:
        statuses = tuple(request.statuses) or LIVE
        found = [
            seen
            for f in sorted(self.state.folders.values(), key=lambda f: f.name)
            if (seen := self.state.view(f)) is not None
            and seen.status in statuses
            and (not request.usage_mode or seen.usage_mode == request.usage_mode)
            and (not request.host or seen.host == request.host)
        ]
        start = int(request.page_token or 0)
        end = start + (request.page_size or 100)
        token = str(end) if end < len(found) else ""
        return vfolder_pb2.ListVFoldersResponse(vfolders=found[start:end], next_page_token=token)

    @handler
    def UpdateVFolder(self, request: Any, context: Any) -> Any:
        folder = self.state.folders[self.state.get(request.vfolder.id).id]
        for path in request.update_mask.paths:
            if path == "name":
                self.state.name_taken(request.vfolder.name)
            setattr(folder, path, getattr(request.vfolder, path))
        return vfolder_pb2.UpdateVFolderResponse(vfolder=self.state.get(folder.id))

    @handler
    def DeleteVFolder(self, request: Any, context: Any) -> Any:
        seen = self.state.get(request.vfolder_id, LIVE + TRASH)
        if seen.mounted_by_session_ids:
            raise fail(grpc.StatusCode.FAILED_PRECONDITION, "mounted in a session", "IN_USE")
        self.state.folders[seen.id].status = vfolder_pb2.FOLDER_STATUS_DELETE_PENDING
        return vfolder_pb2.DeleteVFolderResponse(vfolder=self.state.get(seen.id, ()))

    @handler
    def RestoreVFolder(self, request: Any, context: Any) -> Any:
        seen = self.state.get(request.vfolder_id, ())
        if seen.status in TRASH:
            self.state.name_taken(seen.name)
            self.state.folders[seen.id].status = vfolder_pb2.FOLDER_STATUS_READY
        return vfolder_pb2.RestoreVFolderResponse(vfolder=self.state.get(seen.id))

    @handler
    def PurgeVFolder(self, request: Any, context: Any) -> Any:
        seen = self.state.get(request.vfolder_id, ())
        if seen.status not in (*TRASH, vfolder_pb2.FOLDER_STATUS_DELETE_COMPLETE):
            raise fail(grpc.StatusCode.FAILED_PRECONDITION, "not in the trash", "INVALID_STATE")
        self.state.folders[seen.id].status = vfolder_pb2.FOLDER_STATUS_DELETE_COMPLETE
        shutil.rmtree(self.state.storage.folder(seen.id), ignore_errors=True)
        return vfolder_pb2.PurgeVFolderResponse(vfolder=self.state.get(seen.id, ()))

    @handler
    def CloneVFolder(self, request: Any, context: Any) -> Any:
        source = self.state.get(request.vfolder_id)
        if not source.cloneable and not source.is_owner:
            raise fail(grpc.StatusCode.PERMISSION_DENIED, "not cloneable", "NOT_CLONEABLE")
        self.state.name_taken(request.target_name)
        target = self.state.add(request.target_name, status=vfolder_pb2.FOLDER_STATUS_CLONING)
        task = bgtask_pb2.BackgroundTask(
            id=str(uuid.uuid4()), kind="vfolder-clone", total_progress=2
        )
        events = self.state.tasks[task.id] = []
        for step in (1, 2):
            task.current_progress, task.status = step, bgtask_pb2.BACKGROUND_TASK_STATUS_RUNNING
            events.append(
                bgtask_pb2.WatchTaskResponse(
                    type=bgtask_pb2.BACKGROUND_TASK_EVENT_TYPE_UPDATED, task=task
                )
            )
        if request.target_name.startswith("fail"):
            task.status, task.message = bgtask_pb2.BACKGROUND_TASK_STATUS_FAILED, "volume went away"
            kind = bgtask_pb2.BACKGROUND_TASK_EVENT_TYPE_FAILED
            target.status = vfolder_pb2.FOLDER_STATUS_ERROR
        else:
            shutil.copytree(
                self.state.storage.folder(source.id),
                self.state.storage.folder(target.id),
                dirs_exist_ok=True,
            )
            task.status, kind = (
                bgtask_pb2.BACKGROUND_TASK_STATUS_DONE,
                bgtask_pb2.BACKGROUND_TASK_EVENT_TYPE_DONE,
            )
            target.status = vfolder_pb2.FOLDER_STATUS_READY
        events.append(bgtask_pb2.WatchTaskResponse(type=kind, task=task))
        cloning = self.state.get(target.id, ())
        cloning.status = vfolder_pb2.FOLDER_STATUS_CLONING
        return vfolder_pb2.CloneVFolderResponse(vfolder=cloning, task_id=task.id)

    @handler
    def Mkdir(self, request: Any, context: Any) -> Any:
        folder = self.state.get(request.vfolder_id)
        self.state.needs(folder, RW)
        for path in request.paths:
            target = self.state.storage.file(folder.id, clean(path))
            if target.exists() and not request.exist_ok:
                raise fail(grpc.StatusCode.ALREADY_EXISTS, f"{path} exists")
            if not request.parents and not target.parent.is_dir():
                raise fail(grpc.StatusCode.NOT_FOUND, f"parent of {path} does not exist")
            target.mkdir(parents=True, exist_ok=True)
        return vfolder_pb2.MkdirResponse()

    @handler
    def ListFiles(self, request: Any, context: Any) -> Any:
        folder = self.state.get(request.vfolder_id)
        root = self.state.storage.folder(folder.id)
        directory = self.state.storage.file(folder.id, clean(request.path))
        if not directory.exists():
            raise fail(grpc.StatusCode.NOT_FOUND, f"{request.path} does not exist")
        if not directory.is_dir():
            raise fail(grpc.StatusCode.FAILED_PRECONDITION, "not a directory", "PATH_TYPE_MISMATCH")
        entries = [entry(root, item) for item in sorted(directory.iterdir())]
        return vfolder_pb2.ListFilesResponse(entries=entries)

    @handler
    def MoveFile(self, request: Any, context: Any) -> Any:
        folder = self.state.get(request.vfolder_id)
        self.state.needs(folder, RW)
        source = self.state.storage.file(folder.id, clean(request.source_path))
        target = self.state.storage.file(folder.id, clean(request.target_path))
        if not source.exists():
            raise fail(grpc.StatusCode.NOT_FOUND, f"{request.source_path} does not exist")
        if target.is_dir():
            target = target / source.name
        if target.exists() and not request.overwrite:
            raise fail(grpc.StatusCode.ALREADY_EXISTS, f"{request.target_path} exists")
        source.rename(target)
        return vfolder_pb2.MoveFileResponse()

    @handler
    def DeleteFiles(self, request: Any, context: Any) -> Any:
        folder = self.state.get(request.vfolder_id)
        self.state.needs(folder, WD)
        for path in request.paths:
            target = self.state.storage.file(folder.id, clean(path))
            if target.is_dir() and any(target.iterdir()) and not request.recursive:
                raise fail(
                    grpc.StatusCode.FAILED_PRECONDITION,
                    f"{path} is a directory",
                    "PATH_TYPE_MISMATCH",
                )
            if target.is_dir():
                shutil.rmtree(target)
            else:
                target.unlink(missing_ok=True)
        if not request.recursive:
            return vfolder_pb2.DeleteFilesResponse()
        # As the manager does: a recursive deletion is a background task (done here).
        task = bgtask_pb2.BackgroundTask(
            id=str(uuid.uuid4()),
            kind="vfolder.delete-files",
            status=bgtask_pb2.BACKGROUND_TASK_STATUS_DONE,
        )
        done = bgtask_pb2.BACKGROUND_TASK_EVENT_TYPE_DONE
        self.state.tasks[task.id] = [bgtask_pb2.WatchTaskResponse(type=done, task=task)]
        return vfolder_pb2.DeleteFilesResponse(task_id=task.id)

    @handler
    def RequestUploadToken(self, request: Any, context: Any) -> Any:
        folder = self.state.get(request.vfolder_id)
        self.state.needs(folder, RW)
        if self.state.storage.quota_bytes and request.size > self.state.storage.quota_bytes:
            raise fail(grpc.StatusCode.RESOURCE_EXHAUSTED, "over quota", "STORAGE_QUOTA_EXCEEDED")
        ticket = self.state.ticket(folder, clean(request.path), UPLOAD)
        return vfolder_pb2.RequestUploadTokenResponse(ticket=ticket)

    @handler
    def RequestDownloadToken(self, request: Any, context: Any) -> Any:
        folder = self.state.get(request.vfolder_id)
        path = clean(request.path)
        if not self.state.storage.file(folder.id, path).exists():
            raise fail(grpc.StatusCode.NOT_FOUND, f"{request.path} does not exist")
        ticket = self.state.ticket(folder, path, ARCHIVE if request.archive else DOWNLOAD)
        return vfolder_pb2.RequestDownloadTokenResponse(ticket=ticket)

    @handler
    def InviteToVFolder(self, request: Any, context: Any) -> Any:
        folder = self.state.get(request.vfolder_id)
        made = []
        for email in request.invitee_emails:
            if email not in USERS:
                raise fail(grpc.StatusCode.NOT_FOUND, f"no user {email}", "REFERENCE_NOT_FOUND")
            inv = vfolder_pb2.VFolderInvitation(
                id=str(uuid.uuid4()),
                vfolder_id=folder.id,
                vfolder_name=folder.name,
                inviter_email=IDENTITY.email,
                invitee_email=email,
                permission=request.permission or RW,
                status=vfolder_pb2.FOLDER_INVITATION_STATUS_PENDING,
            )
            self.state.invitations[inv.id] = inv
            made.append(inv)
        return vfolder_pb2.InviteToVFolderResponse(invitations=made)

    @handler
    def ListVFolderInvitations(self, request: Any, context: Any) -> Any:
        sent = request.direction == vfolder_pb2.FOLDER_INVITATION_DIRECTION_SENT
        statuses = tuple(request.statuses) or (vfolder_pb2.FOLDER_INVITATION_STATUS_PENDING,)
        found = [
            inv
            for inv in self.state.invitations.values()
            if (inv.inviter_email if sent else inv.invitee_email) == IDENTITY.email
            and inv.status in statuses
        ]
        return vfolder_pb2.ListVFolderInvitationsResponse(invitations=found)

    def _answer(
        self, invitation_id: str, status: int, sent: bool = False
    ) -> vfolder_pb2.VFolderInvitation:
        inv = self.state.invitations.get(invitation_id)
        mine = inv is not None and IDENTITY.email == (
            inv.inviter_email if sent else inv.invitee_email
        )
        if inv is None or not mine:
            raise fail(grpc.StatusCode.NOT_FOUND, f"invitation {invitation_id} not found")
        if inv.status not in (vfolder_pb2.FOLDER_INVITATION_STATUS_PENDING, status):
            raise fail(grpc.StatusCode.FAILED_PRECONDITION, "already answered", "INVALID_STATE")
        inv.status = status  # type: ignore[assignment]
        if status == vfolder_pb2.FOLDER_INVITATION_STATUS_ACCEPTED:
            self.state.shares.setdefault(inv.vfolder_id, {})[IDENTITY.email] = inv.permission
        return inv

    @handler
    def AcceptVFolderInvitation(self, request: Any, context: Any) -> Any:
        accepted = vfolder_pb2.FOLDER_INVITATION_STATUS_ACCEPTED
        return vfolder_pb2.AcceptVFolderInvitationResponse(
            invitation=self._answer(request.invitation_id, accepted)
        )

    @handler
    def RejectVFolderInvitation(self, request: Any, context: Any) -> Any:
        rejected = vfolder_pb2.FOLDER_INVITATION_STATUS_REJECTED
        return vfolder_pb2.RejectVFolderInvitationResponse(
            invitation=self._answer(request.invitation_id, rejected)
        )

    @handler
    def CancelVFolderInvitation(self, request: Any, context: Any) -> Any:
        cancelled = vfolder_pb2.FOLDER_INVITATION_STATUS_CANCELLED
        return vfolder_pb2.CancelVFolderInvitationResponse(
            invitation=self._answer(request.invitation_id, cancelled, sent=True)
        )

    @handler
    def ShareVFolder(self, request: Any, context: Any) -> Any:
        folder = self.state.get(request.vfolder_id)
        shares = []
        for email in request.emails:
            if email not in USERS:
                raise fail(grpc.StatusCode.NOT_FOUND, f"no user {email}", "REFERENCE_NOT_FOUND")
            self.state.shares.setdefault(folder.id, {})[email] = request.permission
            shares.append(
                vfolder_pb2.VFolderShare(
                    user_id=USERS[email], email=email, permission=request.permission
                )
            )
        return vfolder_pb2.ShareVFolderResponse(shares=shares)

    @handler
    def UnshareVFolder(self, request: Any, context: Any) -> Any:
        folder = self.state.get(request.vfolder_id)
        for email in request.emails:
            self.state.shares.get(folder.id, {}).pop(email, None)
        return vfolder_pb2.UnshareVFolderResponse()

    @handler
    def LeaveVFolder(self, request: Any, context: Any) -> Any:
        folder = self.state.get(request.vfolder_id)
        if folder.is_owner:
            raise fail(grpc.StatusCode.FAILED_PRECONDITION, "you own it", "INVALID_STATE")
        self.state.shares[folder.id].pop(IDENTITY.email)
        return vfolder_pb2.LeaveVFolderResponse()

    @handler
    def ListVFolderHosts(self, request: Any, context: Any) -> Any:
        host = vfolder_pb2.VFolderHost(
            name="local:volume1", backend="vfs", capabilities=["vfolder"]
        )
        host.permissions.permissions.extend(["create-vfolder", "upload-file", "download-file"])
        return vfolder_pb2.ListVFolderHostsResponse(hosts=[host], default_host="local:volume1")

    @handler
    def GetVFolderUsage(self, request: Any, context: Any) -> Any:
        folder = self.state.get(request.vfolder_id)
        files = [p for p in self.state.storage.folder(folder.id).rglob("*") if p.is_file()]
        return vfolder_pb2.GetVFolderUsageResponse(
            file_count=len(files), used_bytes=sum(p.stat().st_size for p in files)
        )
