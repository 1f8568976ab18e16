"""File operations and transfer tokens: authorized here, carried out by the proxy."""

from __future__ import annotations

import time
import uuid
from dataclasses import dataclass
from datetime import timedelta

from google.protobuf.duration_pb2 import Duration
from google.protobuf.message import Message
from sqlalchemy.ext.asyncio import AsyncSession

from bai.api.manager.v1 import vfolder_pb2 as pb
from bai.api.storage.v1 import storage_pb2 as spb
from bai.common.errors import BaiError, ResourceExhausted
from bai.manager.auth.principal import Principal
from bai.manager.bgtasks import BackgroundTasks, Progress, TaskRecord
from bai.manager.vfolders.creation import vfolder_ref
from bai.manager.vfolders.hosts import allowed_hosts_for
from bai.manager.vfolders.lifecycle import require_ready
from bai.manager.vfolders.permissions import Perm, require, require_host_permission
from bai.manager.vfolders.records import Loaded, host_of, load
from bai.manager.vfolders.storage_client import StorageProxies

USAGE_CACHE_SECONDS = 60.0


async def ready_folder(
    db: AsyncSession, p: Principal, vfolder_id: uuid.UUID, needed: Perm, *, write: bool
) -> Loaded:
    loaded = await load(db, p, vfolder_id)
    require(p, loaded.access, needed, write=write)
    require_ready(loaded)
    return loaded


async def call(proxies: StorageProxies, loaded: Loaded, method: str, request: Message) -> object:
    return await proxies.call(host_of(loaded.row).proxy, method, request)


def ref(loaded: Loaded) -> spb.VFolderRef:
    return vfolder_ref(loaded.row)


async def mkdir(
    proxies: StorageProxies, loaded: Loaded, paths: list[str], parents: bool, exist_ok: bool
) -> None:
    request = spb.MkdirRequest(
        vfolder=ref(loaded), relpaths=paths, parents=parents, exist_ok=exist_ok
    )
    await call(proxies, loaded, "Mkdir", request)


async def list_files(
    proxies: StorageProxies, loaded: Loaded, path: str, page_size: int, page_token: str
) -> pb.ListFilesResponse:
    request = spb.ListFilesRequest(
        vfolder=ref(loaded), relpath=path, page_size=page_size, page_token=page_token
    )
    reply = await call(proxies, loaded, "ListFiles", request)
    assert isinstance(reply, spb.ListFilesResponse)
    return pb.ListFilesResponse(entries=reply.entries, next_page_token=reply.next_page_token)


async def move(
    proxies: StorageProxies, loaded: Loaded, source: str, target: str, overwrite: bool
) -> None:
    request = spb.MoveFileRequest(
        vfolder=ref(loaded), source_relpath=source, target_relpath=target, overwrite=overwrite
    )
    await call(proxies, loaded, "MoveFile", request)


async def delete_files(
    proxies: StorageProxies, loaded: Loaded, paths: list[str], recursive: bool
) -> None:
    request = spb.DeleteFilesRequest(vfolder=ref(loaded), relpaths=paths, recursive=recursive)
    await call(proxies, loaded, "DeleteFiles", request)


async def delete_trees(
    tasks: BackgroundTasks, proxies: StorageProxies, loaded: Loaded, paths: list[str], p: Principal
) -> TaskRecord:
    """A recursive deletion, whose size is unknown, as a background task: the proxy
    works without a deadline and the caller follows the task."""
    request = spb.DeleteFilesRequest(vfolder=ref(loaded), relpaths=paths, recursive=True)
    proxy = host_of(loaded.row).proxy

    async def work(progress: Progress) -> dict[str, str]:
        await progress.update(0, len(paths), "deleting")
        await proxies.call(proxy, "DeleteFiles", request, deadline=False)
        await progress.update(len(paths), len(paths), f"deleted {len(paths)} paths")
        return {"vfolder_id": str(loaded.row.id)}

    return await tasks.start("vfolder.delete-files", p, work)


@dataclass(frozen=True)
class TransferRequest:
    op: int  # spb.TransferOp
    path: str
    ttl: timedelta
    # UPLOAD: declared size (0: unknown).
    size: int = 0


async def transfer_ticket(
    db: AsyncSession,
    p: Principal,
    vfolder_id: uuid.UUID,
    proxies: StorageProxies,
    transfer: TransferRequest,
) -> pb.TransferTicket:
    """Check the caller's permission on the folder and the host, then have the
    proxy sign a token for this one folder, path and operation."""
    upload = transfer.op == spb.TRANSFER_OP_UPLOAD
    loaded = await ready_folder(db, p, vfolder_id, Perm.RW if upload else Perm.RO, write=upload)
    row = loaded.row
    host_permission = "upload-file" if upload else "download-file"
    require_host_permission(await allowed_hosts_for(db, p, row), row.host, host_permission)
    if upload and transfer.size:
        await _require_quota_room(proxies, loaded, transfer.size)
    proxy = host_of(row).proxy
    reply = await proxies.call(
        proxy,
        "IssueTransferToken",
        spb.IssueTransferTokenRequest(
            op=transfer.op,  # type: ignore[arg-type]
            vfolder=ref(loaded),
            relpath=transfer.path,
            ttl=Duration(seconds=int(transfer.ttl.total_seconds())),
            user_id=str(p.user_id),
            max_size=transfer.size,
        ),
    )
    address = proxies.settings(proxy).client_address or reply.client_address
    return pb.TransferTicket(
        token=reply.token, expires_at=reply.expires_at, file_service_address=address
    )


async def _require_quota_room(proxies: StorageProxies, loaded: Loaded, size: int) -> None:
    request = spb.GetQuotaScopeRequest(
        volume=host_of(loaded.row).volume, quota_scope=ref(loaded).quota_scope
    )
    try:
        reply = await call(proxies, loaded, "GetQuotaScope", request)
    except BaiError as exc:
        if exc.reason in ("VOLUME_CAPABILITY_MISSING", "NOT_FOUND"):
            return  # no quota to exceed
        raise
    assert isinstance(reply, spb.GetQuotaScopeResponse)
    usage = reply.usage
    if usage.limit_bytes and usage.used_bytes + size > usage.limit_bytes:
        raise ResourceExhausted(
            f"{size} more bytes would exceed the quota of {usage.limit_bytes} bytes",
            reason="STORAGE_QUOTA_EXCEEDED",
            metadata={
                "quota_scope": loaded.row.quota_scope_id,
                "limit": str(usage.limit_bytes),
            },
        )


class UsageCache:
    """GetVFolderUsage answers for 60 s, so that a folder is walked at most
    once a minute however often it is asked about."""

    def __init__(self, seconds: float = USAGE_CACHE_SECONDS) -> None:
        self.seconds = seconds
        self._answers: dict[uuid.UUID, tuple[float, pb.GetVFolderUsageResponse]] = {}

    async def usage(self, proxies: StorageProxies, loaded: Loaded) -> pb.GetVFolderUsageResponse:
        now = time.monotonic()
        cached = self._answers.get(loaded.row.id)
        if cached is not None and now - cached[0] < self.seconds:
            return cached[1]
        reply = await call(
            proxies, loaded, "GetVFolderUsage", spb.GetVFolderUsageRequest(vfolder=ref(loaded))
        )
        assert isinstance(reply, spb.GetVFolderUsageResponse)
        answer = pb.GetVFolderUsageResponse(
            file_count=reply.file_count, used_bytes=reply.used_bytes
        )
        answer.measured_at.GetCurrentTime()
        self._answers = {k: v for k, v in self._answers.items() if now - v[0] < self.seconds}
        self._answers[loaded.row.id] = (now, answer)
        return answer
