"""StorageService handlers for volumes and quota scopes."""

from __future__ import annotations

import asyncio

from bai.api.storage.v1 import storage_pb2 as pb
from bai.common.errors import FailedPrecondition
from bai.storage.api import convert
from bai.storage.api.edge import Context, unary
from bai.storage.context import StorageContext
from bai.storage.volumes.vfs import VfsVolume


def volume_message(volume: VfsVolume) -> pb.Volume:
    return pb.Volume(
        name=volume.name,
        backend=volume.backend,
        path=str(volume.root),
        capabilities=convert.capabilities(),
    )


class VolumeRpcs:
    ctx: StorageContext

    @unary
    async def ListVolumes(
        self, request: pb.ListVolumesRequest, context: Context
    ) -> pb.ListVolumesResponse:
        return pb.ListVolumesResponse(
            volumes=[volume_message(v) for v in self.ctx.pool.volumes.values()]
        )

    @unary
    async def GetVolume(
        self, request: pb.GetVolumeRequest, context: Context
    ) -> pb.GetVolumeResponse:
        volume = self.ctx.pool.get(request.volume)
        if request.include_metric:
            raise FailedPrecondition(
                f"volume {volume.name} ({volume.backend}) reports no performance metric",
                reason="VOLUME_CAPABILITY_MISSING",
                metadata={"volume": volume.name, "capability": "metric"},
            )
        ok, why = await asyncio.to_thread(volume.healthy)
        hardware = pb.VolumeHardwareInfo(
            status=pb.VOLUME_STATUS_HEALTHY if ok else pb.VOLUME_STATUS_UNAVAILABLE,
            status_message=why,
            metadata={"backend": volume.backend},
        )
        return pb.GetVolumeResponse(volume=volume_message(volume), hardware=hardware)

    @unary
    async def CreateQuotaScope(
        self, request: pb.CreateQuotaScopeRequest, context: Context
    ) -> pb.CreateQuotaScopeResponse:
        volume = self.ctx.pool.get(request.volume)
        scope = convert.quota_scope(request.quota_scope)
        used = await asyncio.to_thread(volume.create_scope, scope, request.limit_bytes)
        return pb.CreateQuotaScopeResponse(usage=convert.usage(used))

    @unary
    async def GetQuotaScope(
        self, request: pb.GetQuotaScopeRequest, context: Context
    ) -> pb.GetQuotaScopeResponse:
        volume = self.ctx.pool.get(request.volume)
        scope = convert.quota_scope(request.quota_scope)
        used = await asyncio.to_thread(volume.scope_usage, scope)
        return pb.GetQuotaScopeResponse(usage=convert.usage(used))

    @unary
    async def UpdateQuotaScope(
        self, request: pb.UpdateQuotaScopeRequest, context: Context
    ) -> pb.UpdateQuotaScopeResponse:
        volume = self.ctx.pool.get(request.volume)
        scope = convert.quota_scope(request.quota_scope)
        used = await asyncio.to_thread(volume.update_scope, scope, request.limit_bytes)
        return pb.UpdateQuotaScopeResponse(usage=convert.usage(used))

    @unary
    async def DeleteQuotaScope(
        self, request: pb.DeleteQuotaScopeRequest, context: Context
    ) -> pb.DeleteQuotaScopeResponse:
        volume = self.ctx.pool.get(request.volume)
        scope = convert.quota_scope(request.quota_scope)
        await asyncio.to_thread(volume.delete_scope, scope)
        return pb.DeleteQuotaScopeResponse()

    @unary
    async def GetFsUsage(
        self, request: pb.GetFsUsageRequest, context: Context
    ) -> pb.GetFsUsageResponse:
        volume = self.ctx.pool.get(request.volume)
        capacity, used = await asyncio.to_thread(volume.fs_usage)
        return pb.GetFsUsageResponse(capacity_bytes=capacity, used_bytes=used)
