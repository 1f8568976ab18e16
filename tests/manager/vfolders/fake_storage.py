"""A fake storage proxy: StorageService (the manager-facing contract) over a temp dir.

The storage proxy is not under test here; this keeps folders as real
directories so that the manager's calls have visible effects, checks the
shared secret and that paths stay inside their folder, and records the
transfer tokens it issues (as readable JSON, not JWTs) for assertions.
"""

from __future__ import annotations

import base64
import functools
import json
import os
import shutil
import stat
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TypeVar

import grpc
from google.protobuf.timestamp_pb2 import Timestamp

from bai.api.common.v1 import storage_pb2 as common
from bai.api.storage.v1 import storage_pb2 as spb
from bai.api.storage.v1 import storage_pb2_grpc
from bai.common.errors import (
    AlreadyExists,
    BaiError,
    FailedPrecondition,
    InvalidArgument,
    NotFound,
    ResourceExhausted,
    Unauthenticated,
    Unavailable,
)
from bai.common.grpc_errors import to_grpc_status

SECRET = "fake-storage-secret"
VOLUMES = ("vol1", "vol2")
CLIENT_ADDRESS = "storage.example:6021"


def _scope_dir(scope: common.QuotaScope) -> str:
    kind = "project" if scope.type == common.QUOTA_SCOPE_TYPE_PROJECT else "user"
    return f"{kind}-{scope.id}"


def _size(path: Path) -> tuple[int, int]:
    files = used = 0
    for root, _, names in os.walk(path):
        for name in names:
            files += 1
            used += (Path(root) / name).lstat().st_size
    return files, used


Context = grpc.aio.ServicerContext[Any, Any]
Req = TypeVar("Req")
Resp = TypeVar("Resp")


def guarded(
    method: Callable[[FakeStorage, Req], Awaitable[Resp]],
) -> Callable[[FakeStorage, Req, Context], Awaitable[Resp]]:
    """Check the shared secret, record the call, answer bai errors as statuses."""

    @functools.wraps(method)
    async def handler(self: FakeStorage, request: Req, context: Context) -> Resp:
        self.calls.append(method.__name__)
        try:
            headers = dict(context.invocation_metadata() or ())
            if headers.get("x-bai-storage-auth-token") != SECRET:
                raise Unauthenticated("wrong storage secret", reason="TOKEN_INVALID")
            return await method(self, request)
        except BaiError as exc:
            await context.abort_with_status(to_grpc_status(exc))
            raise AssertionError("unreachable") from exc

    return handler


@dataclass
class FakeStorage(storage_pb2_grpc.StorageServiceServicer):
    root: Path
    limits: dict[tuple[str, str], int] = field(default_factory=dict)
    tokens: list[dict[str, Any]] = field(default_factory=list)
    calls: list[str] = field(default_factory=list)
    # Make CloneVFolder fail (a volume error mid-copy).
    fail_clone: bool = False
    server: grpc.aio.Server | None = None
    port: int = 0

    async def start(self) -> str:
        for volume in VOLUMES:
            (self.root / volume).mkdir(parents=True, exist_ok=True)
        self.server = grpc.aio.server()
        storage_pb2_grpc.add_StorageServiceServicer_to_server(self, self.server)
        self.port = self.server.add_insecure_port("127.0.0.1:0")
        await self.server.start()
        return f"127.0.0.1:{self.port}"

    async def stop(self) -> None:
        if self.server is not None:
            await self.server.stop(0)

    # --- plumbing ---------------------------------------------------------

    def _volume(self, name: str) -> Path:
        if name not in VOLUMES:
            raise NotFound(f"volume {name!r} not found")
        return self.root / name

    def folder(self, ref: spb.VFolderRef, *, must_exist: bool = True) -> Path:
        path = self._volume(ref.volume) / _scope_dir(ref.quota_scope) / ref.folder_id
        if must_exist and not path.is_dir():
            raise NotFound("vfolder not found")
        return path

    def _inside(self, folder: Path, relpath: str, field_name: str) -> Path:
        target = (folder / relpath).resolve()
        if target != folder.resolve() and folder.resolve() not in target.parents:
            raise InvalidArgument.field(field_name, "escapes the folder")
        return target

    # --- volumes and quota scopes -------------------------------------------

    @guarded
    async def ListVolumes(self, request: spb.ListVolumesRequest) -> spb.ListVolumesResponse:
        caps = [spb.VOLUME_CAPABILITY_VFOLDER, spb.VOLUME_CAPABILITY_QUOTA]
        return spb.ListVolumesResponse(
            volumes=[
                spb.Volume(name=v, backend="vfs", path=str(self.root / v), capabilities=caps)
                for v in VOLUMES
            ]
        )

    @guarded
    async def GetFsUsage(self, request: spb.GetFsUsageRequest) -> spb.GetFsUsageResponse:
        usage = shutil.disk_usage(self._volume(request.volume))
        return spb.GetFsUsageResponse(capacity_bytes=usage.total, used_bytes=usage.used)

    def _usage(self, volume: str, scope: common.QuotaScope) -> spb.QuotaUsage:
        path = self._volume(volume) / _scope_dir(scope)
        used = _size(path)[1] if path.exists() else 0
        return spb.QuotaUsage(
            limit_bytes=self.limits.get((volume, _scope_dir(scope)), 0), used_bytes=used
        )

    @guarded
    async def CreateQuotaScope(
        self, request: spb.CreateQuotaScopeRequest
    ) -> spb.CreateQuotaScopeResponse:
        (self._volume(request.volume) / _scope_dir(request.quota_scope)).mkdir(exist_ok=True)
        self.limits[(request.volume, _scope_dir(request.quota_scope))] = request.limit_bytes
        return spb.CreateQuotaScopeResponse(usage=self._usage(request.volume, request.quota_scope))

    @guarded
    async def GetQuotaScope(self, request: spb.GetQuotaScopeRequest) -> spb.GetQuotaScopeResponse:
        if not (self._volume(request.volume) / _scope_dir(request.quota_scope)).is_dir():
            raise NotFound("quota scope not found")
        return spb.GetQuotaScopeResponse(usage=self._usage(request.volume, request.quota_scope))

    # --- folders ----------------------------------------------------------

    @guarded
    async def CreateVFolder(self, request: spb.CreateVFolderRequest) -> spb.CreateVFolderResponse:
        self.folder(request.vfolder, must_exist=False).mkdir(parents=True, exist_ok=True)
        return spb.CreateVFolderResponse()

    @guarded
    async def DeleteVFolder(self, request: spb.DeleteVFolderRequest) -> spb.DeleteVFolderResponse:
        shutil.rmtree(self.folder(request.vfolder, must_exist=False), ignore_errors=True)
        return spb.DeleteVFolderResponse()

    @guarded
    async def CloneVFolder(self, request: spb.CloneVFolderRequest) -> spb.CloneVFolderResponse:
        source = self.folder(request.source)
        target = self.folder(request.target, must_exist=False)
        if self.fail_clone:
            raise Unavailable("the volume went away", reason="DEPENDENCY_UNAVAILABLE")
        if target.exists():
            raise AlreadyExists("target exists")
        target.parent.mkdir(parents=True, exist_ok=True)
        shutil.copytree(source, target, symlinks=True)
        files, used = _size(target)
        return spb.CloneVFolderResponse(copied_bytes=used, copied_files=files)

    @guarded
    async def GetVFolderMount(
        self, request: spb.GetVFolderMountRequest
    ) -> spb.GetVFolderMountResponse:
        folder = self.folder(request.vfolder)
        target = self._inside(folder, request.subpath, "subpath")
        if not target.is_dir():
            raise NotFound("subpath not found")
        return spb.GetVFolderMountResponse(path=str(target))

    @guarded
    async def GetVFolderUsage(
        self, request: spb.GetVFolderUsageRequest
    ) -> spb.GetVFolderUsageResponse:
        files, used = _size(self.folder(request.vfolder))
        return spb.GetVFolderUsageResponse(file_count=files, used_bytes=used)

    # --- files ------------------------------------------------------------

    @guarded
    async def Mkdir(self, request: spb.MkdirRequest) -> spb.MkdirResponse:
        folder = self.folder(request.vfolder)
        for i, rel in enumerate(request.relpaths):
            target = self._inside(folder, rel, f"relpaths[{i}]")
            if target.exists() and not target.is_dir():
                raise FailedPrecondition("a file is in the way", reason="PATH_TYPE_MISMATCH")
            try:
                target.mkdir(parents=request.parents, exist_ok=request.exist_ok)
            except FileExistsError as exc:
                raise AlreadyExists(f"{rel} exists") from exc
            except FileNotFoundError as exc:
                raise NotFound(f"the parent of {rel} does not exist") from exc
        return spb.MkdirResponse()

    @guarded
    async def ListFiles(self, request: spb.ListFilesRequest) -> spb.ListFilesResponse:
        folder = self.folder(request.vfolder)
        target = self._inside(folder, request.relpath, "relpath")
        if not target.exists():
            raise NotFound("path not found")
        if not target.is_dir():
            raise FailedPrecondition("not a directory", reason="PATH_TYPE_MISMATCH")
        entries = sorted(target.iterdir(), key=lambda p: p.name)
        start = int(request.page_token or 0)
        size = request.page_size or 1000
        page = entries[start : start + size]
        out = []
        for entry in page:
            st = entry.lstat()
            kind = (
                common.FILE_TYPE_SYMLINK
                if stat.S_ISLNK(st.st_mode)
                else common.FILE_TYPE_DIRECTORY
                if stat.S_ISDIR(st.st_mode)
                else common.FILE_TYPE_FILE
            )
            modified = Timestamp()
            modified.FromNanoseconds(st.st_mtime_ns)
            out.append(
                common.FileEntry(
                    name=entry.name,
                    path=str(entry.relative_to(folder.resolve())),
                    type=kind,
                    size=st.st_size if kind == common.FILE_TYPE_FILE else 0,
                    mode=stat.S_IMODE(st.st_mode),
                    modified_at=modified,
                )
            )
        more = start + size < len(entries)
        return spb.ListFilesResponse(entries=out, next_page_token=str(start + size) if more else "")

    @guarded
    async def MoveFile(self, request: spb.MoveFileRequest) -> spb.MoveFileResponse:
        folder = self.folder(request.vfolder)
        source = self._inside(folder, request.source_relpath, "source_relpath")
        target = self._inside(folder, request.target_relpath, "target_relpath")
        if not source.exists():
            raise NotFound("source not found")
        if target.is_dir():
            target = target / source.name
        if target.exists() and not request.overwrite:
            raise AlreadyExists("target exists")
        source.rename(target)
        return spb.MoveFileResponse()

    @guarded
    async def DeleteFiles(self, request: spb.DeleteFilesRequest) -> spb.DeleteFilesResponse:
        folder = self.folder(request.vfolder)
        for i, rel in enumerate(request.relpaths):
            target = self._inside(folder, rel, f"relpaths[{i}]")
            if target.is_dir() and not target.is_symlink():
                if any(target.iterdir()) and not request.recursive:
                    raise FailedPrecondition("directory not empty", reason="PATH_TYPE_MISMATCH")
                shutil.rmtree(target)
            elif target.exists() or target.is_symlink():
                target.unlink()
        return spb.DeleteFilesResponse()

    @guarded
    async def IssueTransferToken(
        self, request: spb.IssueTransferTokenRequest
    ) -> spb.IssueTransferTokenResponse:
        folder = self.folder(request.vfolder)
        target = self._inside(folder, request.relpath, "relpath")
        if request.op != spb.TRANSFER_OP_UPLOAD and not target.exists():
            raise NotFound("path not found")
        limit = self._usage(request.vfolder.volume, request.vfolder.quota_scope)
        if limit.limit_bytes and request.max_size > limit.limit_bytes:
            raise ResourceExhausted("over quota", reason="STORAGE_QUOTA_EXCEEDED")
        expires = int(time.time() + request.ttl.seconds)
        claims = {
            "op": spb.TransferOp.Name(request.op),
            "volume": request.vfolder.volume,
            "vfid": f"{_scope_dir(request.vfolder.quota_scope)}/{request.vfolder.folder_id}",
            "relpath": request.relpath,
            "sub": request.user_id,
            "max_size": request.max_size,
            "exp": expires,
        }
        self.tokens.append(claims)
        expires_at = Timestamp(seconds=expires)
        token = base64.urlsafe_b64encode(json.dumps(claims).encode()).decode()
        return spb.IssueTransferTokenResponse(
            token=token, expires_at=expires_at, client_address=CLIENT_ADDRESS
        )


def claims_of(token: str) -> dict[str, Any]:
    return dict(json.loads(base64.urlsafe_b64decode(token.encode())))
