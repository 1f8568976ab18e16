"""VFolderService: thin edge over bai.manager.vfolders."""

from __future__ import annotations

import uuid

from bai.api.manager.v1 import vfolder_pb2 as pb
from bai.api.manager.v1 import vfolder_pb2_grpc
from bai.api.storage.v1 import storage_pb2 as spb
from bai.manager.api.rpc import Call, unary
from bai.manager.context import ManagerContext
from bai.manager.validation import Violations
from bai.manager.vfolders import (
    clone,
    creation,
    files,
    hosts,
    invitations,
    lifecycle,
    listing,
    paths,
    quotas,
    records,
    requests,
    sharing,
)
from bai.manager.vfolders.names import INVITATION_STATE_NAME
from bai.manager.vfolders.permissions import Perm

_VFOLDER = "vfolder"


def _folder_id(value: str) -> uuid.UUID:
    v = Violations()
    found = records.folder_id(v, value)
    v.raise_if_any()
    return found


def _invitation_id(value: str) -> uuid.UUID:
    v = Violations()
    found = v.uuid("invitation_id", value)
    v.raise_if_any()
    assert found is not None
    return found


class VFolderServicer(vfolder_pb2_grpc.VFolderServiceServicer):
    SERVICE = "bai.api.manager.v1.VFolderService"

    def __init__(self, ctx: ManagerContext) -> None:
        self.ctx = ctx
        self.proxies = ctx.storage
        self.tasks = ctx.tasks
        self.usage_cache = files.UsageCache()

    async def _proto(self, loaded: records.Loaded) -> pb.VFolder:
        async with self.ctx.sessions() as db:
            return await records.loaded_to_proto(db, loaded)

    def _mark(self, call: Call, loaded: records.Loaded) -> None:
        call.entity_id, call.domain_name = str(loaded.row.id), loaded.row.domain_name

    @unary(audit=(_VFOLDER, "create"))
    async def CreateVFolder(
        self, request: pb.CreateVFolderRequest, call: Call
    ) -> pb.CreateVFolderResponse:
        spec = requests.create(request)
        call.entity_id = spec.name
        async with self.ctx.sessions() as db, db.begin():
            loaded = await creation.create(db, call.principal, spec, self.proxies)
        self._mark(call, loaded)
        return pb.CreateVFolderResponse(vfolder=await self._proto(loaded))

    @unary()
    async def GetVFolder(self, request: pb.GetVFolderRequest, call: Call) -> pb.GetVFolderResponse:
        async with self.ctx.sessions() as db:
            loaded = await records.load(db, call.principal, _folder_id(request.vfolder_id))
            shares = await lifecycle.shares(db, loaded.row.id) if loaded.access.manages else []
            folder = await records.loaded_to_proto(db, loaded)
        return pb.GetVFolderResponse(vfolder=folder, shares=shares)

    @unary()
    async def ListVFolders(
        self, request: pb.ListVFoldersRequest, call: Call
    ) -> pb.ListVFoldersResponse:
        f, size = requests.list_filter(request)
        async with self.ctx.sessions() as db:
            folders, token = await listing.list_folders(
                db, call.principal, f, size, request.page_token
            )
        return pb.ListVFoldersResponse(vfolders=folders, next_page_token=token)

    @unary(audit=(_VFOLDER, "update"))
    async def UpdateVFolder(
        self, request: pb.UpdateVFolderRequest, call: Call
    ) -> pb.UpdateVFolderResponse:
        target, changes = requests.update(request)
        call.entity_id = str(target)
        async with self.ctx.sessions() as db, db.begin():
            loaded = await lifecycle.update(db, call.principal, target, changes)
        self._mark(call, loaded)
        return pb.UpdateVFolderResponse(vfolder=await self._proto(loaded))

    @unary(audit=(_VFOLDER, "delete"))
    async def DeleteVFolder(
        self, request: pb.DeleteVFolderRequest, call: Call
    ) -> pb.DeleteVFolderResponse:
        target = _folder_id(request.vfolder_id)
        call.entity_id = str(target)
        async with self.ctx.sessions() as db, db.begin():
            loaded = await lifecycle.trash(db, call.principal, target)
        self._mark(call, loaded)
        return pb.DeleteVFolderResponse(vfolder=await self._proto(loaded))

    @unary(audit=(_VFOLDER, "restore"))
    async def RestoreVFolder(
        self, request: pb.RestoreVFolderRequest, call: Call
    ) -> pb.RestoreVFolderResponse:
        target = _folder_id(request.vfolder_id)
        call.entity_id = str(target)
        async with self.ctx.sessions() as db, db.begin():
            loaded = await lifecycle.restore(db, call.principal, target)
        self._mark(call, loaded)
        return pb.RestoreVFolderResponse(vfolder=await self._proto(loaded))

    @unary(audit=(_VFOLDER, "purge"))
    async def PurgeVFolder(
        self, request: pb.PurgeVFolderRequest, call: Call
    ) -> pb.PurgeVFolderResponse:
        target = _folder_id(request.vfolder_id)
        call.entity_id = str(target)
        loaded = await lifecycle.purge(self.ctx.sessions, call.principal, target, self.proxies)
        self._mark(call, loaded)
        return pb.PurgeVFolderResponse(vfolder=await self._proto(loaded))

    @unary(audit=(_VFOLDER, "clone"))
    async def CloneVFolder(
        self, request: pb.CloneVFolderRequest, call: Call
    ) -> pb.CloneVFolderResponse:
        source_id, spec = requests.clone(request)
        call.entity_id = str(source_id)
        async with self.ctx.sessions() as db, db.begin():
            source, target = await clone.begin(db, call.principal, source_id, spec, self.proxies)
        self._mark(call, target)
        task = await clone.start_copy(
            self.ctx.sessions, self.tasks, self.proxies, call.principal, source, target
        )
        return pb.CloneVFolderResponse(vfolder=await self._proto(target), task_id=task.id)

    async def _ready(
        self, call: Call, vfolder_id: str, needed: Perm, *, write: bool
    ) -> records.Loaded:
        target = _folder_id(vfolder_id)
        async with self.ctx.sessions() as db:
            loaded = await files.ready_folder(db, call.principal, target, needed, write=write)
        self._mark(call, loaded)
        return loaded

    @unary(audit=(_VFOLDER, "mkdir"))
    async def Mkdir(self, request: pb.MkdirRequest, call: Call) -> pb.MkdirResponse:
        v = Violations()
        dirs = paths.relpaths(v, "paths", list(request.paths), 100)
        v.raise_if_any()
        loaded = await self._ready(call, request.vfolder_id, Perm.RW, write=True)
        await files.mkdir(self.proxies, loaded, dirs, request.parents, request.exist_ok)
        return pb.MkdirResponse()

    @unary()
    async def ListFiles(self, request: pb.ListFilesRequest, call: Call) -> pb.ListFilesResponse:
        v = Violations()
        path = paths.relpath(v, "path", request.path, root_ok=True)
        if request.page_size:
            v.int_range("page_size", request.page_size, 1, 10000)
        v.raise_if_any()
        loaded = await self._ready(call, request.vfolder_id, Perm.RO, write=False)
        return await files.list_files(
            self.proxies, loaded, path, request.page_size, request.page_token
        )

    @unary(audit=(_VFOLDER, "move-file"))
    async def MoveFile(self, request: pb.MoveFileRequest, call: Call) -> pb.MoveFileResponse:
        v = Violations()
        source = paths.relpath(v, "source_path", request.source_path, root_ok=False)
        target = paths.relpath(v, "target_path", request.target_path, root_ok=False)
        v.raise_if_any()
        loaded = await self._ready(call, request.vfolder_id, Perm.RW, write=True)
        await files.move(self.proxies, loaded, source, target, request.overwrite)
        return pb.MoveFileResponse()

    @unary(audit=(_VFOLDER, "delete-files"))
    async def DeleteFiles(
        self, request: pb.DeleteFilesRequest, call: Call
    ) -> pb.DeleteFilesResponse:
        v = Violations()
        doomed = paths.relpaths(v, "paths", list(request.paths), 1000)
        v.raise_if_any()
        loaded = await self._ready(call, request.vfolder_id, Perm.WD, write=True)
        if request.recursive:
            task = await files.delete_trees(
                self.tasks, self.proxies, loaded, doomed, call.principal
            )
            return pb.DeleteFilesResponse(task_id=task.id)
        await files.delete_files(self.proxies, loaded, doomed, False)
        return pb.DeleteFilesResponse()

    @unary(audit=(_VFOLDER, "upload-token"))
    async def RequestUploadToken(
        self, request: pb.RequestUploadTokenRequest, call: Call
    ) -> pb.RequestUploadTokenResponse:
        v = Violations()
        path = paths.relpath(v, "path", request.path, root_ok=False)
        ttl = requests.ttl(v, request)
        if request.size < 0:
            v.add("size", "must not be negative")
        v.raise_if_any()
        transfer = files.TransferRequest(spb.TRANSFER_OP_UPLOAD, path, ttl, request.size)
        call.entity_id = request.vfolder_id
        async with self.ctx.sessions() as db:
            ticket = await files.transfer_ticket(
                db, call.principal, _folder_id(request.vfolder_id), self.proxies, transfer
            )
        return pb.RequestUploadTokenResponse(ticket=ticket)

    @unary()
    async def RequestDownloadToken(
        self, request: pb.RequestDownloadTokenRequest, call: Call
    ) -> pb.RequestDownloadTokenResponse:
        v = Violations()
        path = paths.relpath(v, "path", request.path, root_ok=request.archive)
        ttl = requests.ttl(v, request)
        v.raise_if_any()
        op = spb.TRANSFER_OP_ARCHIVE_DOWNLOAD if request.archive else spb.TRANSFER_OP_DOWNLOAD
        transfer = files.TransferRequest(op, path, ttl)
        async with self.ctx.sessions() as db:
            ticket = await files.transfer_ticket(
                db, call.principal, _folder_id(request.vfolder_id), self.proxies, transfer
            )
        return pb.RequestDownloadTokenResponse(ticket=ticket)

    @unary(audit=(_VFOLDER, "invite"))
    async def InviteToVFolder(
        self, request: pb.InviteToVFolderRequest, call: Call
    ) -> pb.InviteToVFolderResponse:
        v = Violations()
        target = records.folder_id(v, request.vfolder_id)
        invitees = requests.emails(v, "invitee_emails", list(request.invitee_emails))
        perm = requests.permission(v, request.permission, default="rw")
        if perm == "wd":
            v.add("permission", "READ_WRITE_DELETE is the owner's; invite with ro or rw")
        v.raise_if_any()
        call.entity_id = str(target)
        async with self.ctx.sessions() as db, db.begin():
            made = await sharing.invite(db, call.principal, target, invitees, perm)
        return pb.InviteToVFolderResponse(invitations=made)

    @unary()
    async def ListVFolderInvitations(
        self, request: pb.ListVFolderInvitationsRequest, call: Call
    ) -> pb.ListVFolderInvitationsResponse:
        v = Violations()
        size = v.page_size(request.page_size)
        states = []
        for i, status in enumerate(request.statuses):
            if status not in INVITATION_STATE_NAME:
                v.add(f"statuses[{i}]", "is not a FolderInvitationStatus")
            else:
                states.append(INVITATION_STATE_NAME[status])
        v.raise_if_any()
        sent = request.direction == pb.FOLDER_INVITATION_DIRECTION_SENT
        async with self.ctx.sessions() as db:
            found, token = await invitations.list_invitations(
                db,
                call.principal,
                sent=sent,
                states=tuple(sorted(set(states))) or ("pending",),
                page_size=size,
                page_token=request.page_token,
            )
        return pb.ListVFolderInvitationsResponse(invitations=found, next_page_token=token)

    @unary(audit=(_VFOLDER, "accept-invitation"))
    async def AcceptVFolderInvitation(
        self, request: pb.AcceptVFolderInvitationRequest, call: Call
    ) -> pb.AcceptVFolderInvitationResponse:
        target = _invitation_id(request.invitation_id)
        call.entity_id = str(target)
        async with self.ctx.sessions() as db, db.begin():
            answer = await sharing.accept(db, call.principal, target)
        return pb.AcceptVFolderInvitationResponse(invitation=answer)

    @unary(audit=(_VFOLDER, "reject-invitation"))
    async def RejectVFolderInvitation(
        self, request: pb.RejectVFolderInvitationRequest, call: Call
    ) -> pb.RejectVFolderInvitationResponse:
        target = _invitation_id(request.invitation_id)
        call.entity_id = str(target)
        async with self.ctx.sessions() as db, db.begin():
            answer = await sharing.answer(db, call.principal, target, as_invitee=True)
        return pb.RejectVFolderInvitationResponse(invitation=answer)

    @unary(audit=(_VFOLDER, "cancel-invitation"))
    async def CancelVFolderInvitation(
        self, request: pb.CancelVFolderInvitationRequest, call: Call
    ) -> pb.CancelVFolderInvitationResponse:
        target = _invitation_id(request.invitation_id)
        call.entity_id = str(target)
        async with self.ctx.sessions() as db, db.begin():
            answer = await sharing.answer(db, call.principal, target, as_invitee=False)
        return pb.CancelVFolderInvitationResponse(invitation=answer)

    @unary(audit=(_VFOLDER, "share"))
    async def ShareVFolder(
        self, request: pb.ShareVFolderRequest, call: Call
    ) -> pb.ShareVFolderResponse:
        v = Violations()
        target = records.folder_id(v, request.vfolder_id)
        users = requests.emails(v, "emails", list(request.emails))
        perm = requests.permission(v, request.permission, default=None)
        v.raise_if_any()
        call.entity_id = str(target)
        async with self.ctx.sessions() as db, db.begin():
            made = await sharing.share(db, call.principal, target, users, perm)
        return pb.ShareVFolderResponse(shares=made)

    @unary(audit=(_VFOLDER, "unshare"))
    async def UnshareVFolder(
        self, request: pb.UnshareVFolderRequest, call: Call
    ) -> pb.UnshareVFolderResponse:
        v = Violations()
        target = records.folder_id(v, request.vfolder_id)
        users = requests.emails(v, "emails", list(request.emails))
        v.raise_if_any()
        call.entity_id = str(target)
        async with self.ctx.sessions() as db, db.begin():
            await sharing.unshare(db, call.principal, target, users)
        return pb.UnshareVFolderResponse()

    @unary(audit=(_VFOLDER, "leave"))
    async def LeaveVFolder(
        self, request: pb.LeaveVFolderRequest, call: Call
    ) -> pb.LeaveVFolderResponse:
        target = _folder_id(request.vfolder_id)
        call.entity_id = str(target)
        async with self.ctx.sessions() as db, db.begin():
            await sharing.leave(db, call.principal, target)
        return pb.LeaveVFolderResponse()

    @unary()
    async def ListVFolderHosts(
        self, request: pb.ListVFolderHostsRequest, call: Call
    ) -> pb.ListVFolderHostsResponse:
        async with self.ctx.sessions() as db:
            return await hosts.list_hosts(db, call.principal, self.proxies)

    @unary()
    async def GetVFolderUsage(
        self, request: pb.GetVFolderUsageRequest, call: Call
    ) -> pb.GetVFolderUsageResponse:
        loaded = await self._ready(call, request.vfolder_id, Perm.RO, write=False)
        return await self.usage_cache.usage(self.proxies, loaded)

    @unary()
    async def GetVFolderQuota(
        self, request: pb.GetVFolderQuotaRequest, call: Call
    ) -> pb.GetVFolderQuotaResponse:
        v = Violations()
        requests.quota_host(v, request.host)
        requests.quota_scope(v, request.quota_scope)
        v.raise_if_any()
        async with self.ctx.sessions() as db:
            usage = await quotas.get_quota(
                db, call.principal, self.proxies, request.host, request.quota_scope
            )
        return pb.GetVFolderQuotaResponse(
            limit_bytes=usage.limit_bytes, used_bytes=usage.used_bytes
        )

    @unary(audit=("quota_scope", "set"))
    async def SetVFolderQuota(
        self, request: pb.SetVFolderQuotaRequest, call: Call
    ) -> pb.SetVFolderQuotaResponse:
        v = Violations()
        requests.quota_host(v, request.host)
        requests.quota_scope(v, request.quota_scope)
        if request.limit_bytes < 0:
            v.add("limit_bytes", "must not be negative")
        v.raise_if_any()
        call.entity_id = f"{request.host}/{request.quota_scope.id}"
        async with self.ctx.sessions() as db:
            usage = await quotas.set_quota(
                db,
                call.principal,
                self.proxies,
                request.host,
                request.quota_scope,
                request.limit_bytes,
            )
        return pb.SetVFolderQuotaResponse(
            limit_bytes=usage.limit_bytes, used_bytes=usage.used_bytes
        )
