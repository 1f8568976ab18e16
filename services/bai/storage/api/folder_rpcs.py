"""StorageService handlers for whole folders: create, delete, clone, mount, usage, metadata."""

from __future__ import annotations

import asyncio

from bai.api.storage.v1 import storage_pb2 as pb
from bai.common.errors import InvalidArgument
from bai.storage import folder_ops
from bai.storage.api import convert
from bai.storage.api.edge import Context, unary
from bai.storage.context import StorageContext
from bai.storage.paths import split_relpath


class FolderRpcs:
    ctx: StorageContext

    @unary
    async def CreateVFolder(
        self, request: pb.CreateVFolderRequest, context: Context
    ) -> pb.CreateVFolderResponse:
        name, vf = convert.vfolder(request.vfolder)
        if request.mode > 0o7777:
            raise InvalidArgument.field("mode", "must be POSIX permission bits")
        volume = self.ctx.pool.get(name)
        await asyncio.to_thread(volume.create_folder, vf, request.mode)
        return pb.CreateVFolderResponse()

    @unary
    async def DeleteVFolder(
        self, request: pb.DeleteVFolderRequest, context: Context
    ) -> pb.DeleteVFolderResponse:
        name, vf = convert.vfolder(request.vfolder)
        volume = self.ctx.pool.get(name)
        trash = await asyncio.to_thread(volume.delete_folder, vf)
        if trash is not None:
            self.ctx.in_background(volume.reclaim, trash)
        return pb.DeleteVFolderResponse()

    @unary
    async def CloneVFolder(
        self, request: pb.CloneVFolderRequest, context: Context
    ) -> pb.CloneVFolderResponse:
        src_volume, src = convert.vfolder(request.source, "source")
        dst_volume, dst = convert.vfolder(request.target, "target")
        copied_bytes, copied_files = await asyncio.to_thread(
            self.ctx.pool.clone, src_volume, src, dst_volume, dst
        )
        return pb.CloneVFolderResponse(copied_bytes=copied_bytes, copied_files=copied_files)

    @unary
    async def GetVFolderMount(
        self, request: pb.GetVFolderMountRequest, context: Context
    ) -> pb.GetVFolderMountResponse:
        name, vf = convert.vfolder(request.vfolder)
        volume = self.ctx.pool.get(name)
        parts = split_relpath(request.subpath, "subpath")
        await asyncio.to_thread(folder_ops.check_exists, volume, vf, parts, directory=True)
        path = volume.mount_root / vf.scope.dirname / vf.folder
        return pb.GetVFolderMountResponse(path=str(path.joinpath(*parts)))

    @unary
    async def GetVFolderUsage(
        self, request: pb.GetVFolderUsageRequest, context: Context
    ) -> pb.GetVFolderUsageResponse:
        name, vf = convert.vfolder(request.vfolder)
        volume = self.ctx.pool.get(name)
        files, used = await asyncio.to_thread(volume.folder_usage, vf)
        return pb.GetVFolderUsageResponse(file_count=files, used_bytes=used)

    @unary
    async def GetVFolderUsedBytes(
        self, request: pb.GetVFolderUsedBytesRequest, context: Context
    ) -> pb.GetVFolderUsedBytesResponse:
        name, vf = convert.vfolder(request.vfolder)
        volume = self.ctx.pool.get(name)
        _, used = await asyncio.to_thread(volume.folder_usage, vf)
        return pb.GetVFolderUsedBytesResponse(used_bytes=used)

    @unary
    async def GetVFolderMetadata(
        self, request: pb.GetVFolderMetadataRequest, context: Context
    ) -> pb.GetVFolderMetadataResponse:
        name, vf = convert.vfolder(request.vfolder)
        volume = self.ctx.pool.get(name)
        blob = await asyncio.to_thread(volume.get_metadata, vf)
        return pb.GetVFolderMetadataResponse(metadata=blob)

    @unary
    async def SetVFolderMetadata(
        self, request: pb.SetVFolderMetadataRequest, context: Context
    ) -> pb.SetVFolderMetadataResponse:
        name, vf = convert.vfolder(request.vfolder)
        volume = self.ctx.pool.get(name)
        await asyncio.to_thread(volume.set_metadata, vf, request.metadata)
        return pb.SetVFolderMetadataResponse()
