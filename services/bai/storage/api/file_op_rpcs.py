"""StorageService handlers for files in a folder and for transfer tokens."""

from __future__ import annotations

import asyncio

from google.protobuf.timestamp_pb2 import Timestamp

from bai.api.storage.v1 import storage_pb2 as pb
from bai.common.errors import InvalidArgument
from bai.storage import folder_ops, tokens
from bai.storage.api import convert
from bai.storage.api.edge import Context, unary
from bai.storage.context import StorageContext
from bai.storage.paths import join, split_relpath


class FileOpRpcs:
    ctx: StorageContext

    @unary
    async def Mkdir(self, request: pb.MkdirRequest, context: Context) -> pb.MkdirResponse:
        name, vf = convert.vfolder(request.vfolder)
        volume = self.ctx.pool.get(name)
        await asyncio.to_thread(
            folder_ops.mkdir,
            volume,
            vf,
            list(request.relpaths),
            parents=request.parents,
            exist_ok=request.exist_ok,
        )
        return pb.MkdirResponse()

    @unary
    async def ListFiles(
        self, request: pb.ListFilesRequest, context: Context
    ) -> pb.ListFilesResponse:
        name, vf = convert.vfolder(request.vfolder)
        volume = self.ctx.pool.get(name)
        parts = split_relpath(request.relpath, "relpath")
        entries, next_token = await asyncio.to_thread(
            folder_ops.list_page, volume, vf, parts, (), request.page_size, request.page_token
        )
        return pb.ListFilesResponse(
            entries=[convert.file_entry(e) for e in entries], next_page_token=next_token
        )

    @unary
    async def RenameFile(
        self, request: pb.RenameFileRequest, context: Context
    ) -> pb.RenameFileResponse:
        name, vf = convert.vfolder(request.vfolder)
        volume = self.ctx.pool.get(name)
        await asyncio.to_thread(folder_ops.rename, volume, vf, request.relpath, request.new_name)
        return pb.RenameFileResponse()

    @unary
    async def MoveFile(self, request: pb.MoveFileRequest, context: Context) -> pb.MoveFileResponse:
        name, vf = convert.vfolder(request.vfolder)
        volume = self.ctx.pool.get(name)
        await asyncio.to_thread(
            folder_ops.move,
            volume,
            vf,
            request.source_relpath,
            request.target_relpath,
            overwrite=request.overwrite,
        )
        return pb.MoveFileResponse()

    @unary
    async def DeleteFiles(
        self, request: pb.DeleteFilesRequest, context: Context
    ) -> pb.DeleteFilesResponse:
        name, vf = convert.vfolder(request.vfolder)
        volume = self.ctx.pool.get(name)
        all_parts = folder_ops.checked_deletions(list(request.relpaths))
        await asyncio.to_thread(
            folder_ops.delete, volume, vf, all_parts, recursive=request.recursive
        )
        return pb.DeleteFilesResponse()

    @unary
    async def DeleteFilesAsync(
        self, request: pb.DeleteFilesAsyncRequest, context: Context
    ) -> pb.DeleteFilesAsyncResponse:
        name, vf = convert.vfolder(request.vfolder)
        volume = self.ctx.pool.get(name)
        all_parts = folder_ops.checked_deletions(list(request.relpaths))
        await asyncio.to_thread(volume.existing_folder, vf)

        def run() -> None:
            folder_ops.delete(volume, vf, all_parts, recursive=request.recursive)

        self.ctx.in_background(run)
        return pb.DeleteFilesAsyncResponse()

    @unary
    async def IssueTransferToken(
        self, request: pb.IssueTransferTokenRequest, context: Context
    ) -> pb.IssueTransferTokenResponse:
        op = convert.OPS.get(request.op)
        if op is None:
            raise InvalidArgument.field("op", "must be UPLOAD, DOWNLOAD or ARCHIVE_DOWNLOAD")
        name, vf = convert.vfolder(request.vfolder)
        parts = split_relpath(request.relpath, "relpath")
        if request.max_size < 0:
            raise InvalidArgument.field("max_size", "must be >= 0 (0: no limit)")
        ttl = request.ttl.ToTimedelta().total_seconds() if request.HasField("ttl") else 0
        ttl = ttl or tokens.DEFAULT_TTL_SECONDS
        volume = self.ctx.pool.get(name)
        if op == "upload":
            await asyncio.to_thread(volume.existing_folder, vf)
        else:
            await asyncio.to_thread(
                folder_ops.check_exists, volume, vf, parts, directory=op == "archive-download"
            )
        claims = tokens.TransferClaims(
            op=op,
            volume=name,
            vfid=vf.vfid,
            relpath=join(parts),
            sub=request.user_id,
            max_size=request.max_size,
        )
        token, issued = tokens.issue(self.ctx.jwt_secret, claims, ttl)
        return pb.IssueTransferTokenResponse(
            token=token,
            expires_at=Timestamp(seconds=issued.exp),
            client_address=self.ctx.config.client_address,
        )
