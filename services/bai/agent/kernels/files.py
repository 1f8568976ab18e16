"""Files in a kernel's /home/work (its scratch directory on the host).

Every path is resolved (symlinks included) and must stay inside the scratch
directory: a path that escapes it is INVALID_FIELD, so a symlink planted by
the kernel cannot reach the agent's host files.
"""

from __future__ import annotations

import asyncio
import os
import stat
from collections.abc import AsyncIterator
from datetime import UTC, datetime
from pathlib import Path

from bai.agent.kernels.lifecycle import KernelManager
from bai.agent.runner.layout import WORK_DIR
from bai.api.agent.v1 import agent_pb2
from bai.api.common.v1 import storage_pb2
from bai.common.errors import FailedPrecondition, InvalidArgument, NotFound

CHUNK = 1024 * 1024
MAX_ENTRIES = 10000


def contained_path(root: Path, raw: str, field: str = "path") -> Path:
    """`raw` (relative to /home/work, or absolute under it) as a host path inside `root`."""
    if "\x00" in raw:
        raise InvalidArgument.field(field, "must not contain NUL characters")
    relative = raw
    if raw == WORK_DIR or raw.startswith(WORK_DIR + "/"):
        relative = raw[len(WORK_DIR) :].lstrip("/")
    if relative.startswith("/"):
        raise InvalidArgument.field(field, f"must be relative to {WORK_DIR}")
    base = root.resolve()
    target = (base / relative).resolve()
    if not target.is_relative_to(base):
        raise InvalidArgument.field(field, f"escapes {WORK_DIR}")
    return target


def _path_type_mismatch(raw: str, want: str) -> FailedPrecondition:
    return FailedPrecondition(
        f"{raw or '.'} is not a {want}", reason="PATH_TYPE_MISMATCH", metadata={"path": raw}
    )


def _scratch(km: KernelManager, kernel_id: str) -> Path:
    km.require_running(kernel_id)
    return km.ctx.scratch_dir(kernel_id)


async def upload(
    km: KernelManager, header: agent_pb2.UploadFileHeader, chunks: AsyncIterator[bytes]
) -> tuple[str, int]:
    if header.size < 0:
        raise InvalidArgument.field("header.size", "must not be negative")
    if not header.path:
        raise InvalidArgument.field("header.path", "is required")
    root = _scratch(km, header.kernel_id)
    target = contained_path(root, header.path, "header.path")
    if target == root.resolve() or target.is_dir():
        raise _path_type_mismatch(header.path, "file")
    try:
        await asyncio.to_thread(target.parent.mkdir, parents=True, exist_ok=True)
    except (FileExistsError, NotADirectoryError) as exc:
        raise _path_type_mismatch(header.path, "path under directories") from exc
    temporary = target.with_name(f".{target.name}.bai-upload")
    written = 0
    try:
        with temporary.open("wb") as out:
            async for chunk in chunks:
                written += len(chunk)
                if written > header.size:
                    raise InvalidArgument.field(
                        "chunk", f"more than header.size={header.size} bytes"
                    )
                await asyncio.to_thread(out.write, chunk)
        if written != header.size:
            raise InvalidArgument.field("header.size", f"{header.size} announced, {written} sent")
        temporary.chmod(header.mode or 0o644)
        os.replace(temporary, target)
    finally:
        temporary.unlink(missing_ok=True)
    return str(target.relative_to(root.resolve())), written


async def download(
    km: KernelManager, kernel_id: str, path: str, offset: int
) -> AsyncIterator[agent_pb2.DownloadFileResponse]:
    root = _scratch(km, kernel_id)
    target = contained_path(root, path)
    if not target.exists():
        raise NotFound(f"{path} does not exist", metadata={"path": path})
    if not target.is_file():
        raise _path_type_mismatch(path, "file")
    size = target.stat().st_size
    if offset < 0 or offset > size:
        raise InvalidArgument.field("offset", f"must be within 0..{size}")
    first = True
    with target.open("rb") as source:
        source.seek(offset)
        while True:
            data = await asyncio.to_thread(source.read, CHUNK)
            if not data and not first:
                return
            reply = agent_pb2.DownloadFileResponse(chunk=data)
            if first:
                reply.size = size
                first = False
            yield reply
            if not data:
                return


def _entry(path: Path, root: Path) -> storage_pb2.FileEntry:
    info = path.lstat()
    kind = storage_pb2.FILE_TYPE_OTHER
    if stat.S_ISLNK(info.st_mode):
        kind = storage_pb2.FILE_TYPE_SYMLINK
    elif stat.S_ISDIR(info.st_mode):
        kind = storage_pb2.FILE_TYPE_DIRECTORY
    elif stat.S_ISREG(info.st_mode):
        kind = storage_pb2.FILE_TYPE_FILE
    entry = storage_pb2.FileEntry(
        name=path.name,
        path=str(path.relative_to(root)),
        type=kind,
        size=info.st_size if kind != storage_pb2.FILE_TYPE_DIRECTORY else 0,
        mode=stat.S_IMODE(info.st_mode),
        symlink_target=os.readlink(path) if kind == storage_pb2.FILE_TYPE_SYMLINK else "",
    )
    entry.modified_at.FromDatetime(datetime.fromtimestamp(info.st_mtime, UTC))
    entry.created_at.FromDatetime(datetime.fromtimestamp(info.st_ctime, UTC))
    return entry


def _list(root: Path, target: Path) -> tuple[list[storage_pb2.FileEntry], bool]:
    names = sorted(os.listdir(target))
    entries = [_entry(target / name, root) for name in names[:MAX_ENTRIES]]
    return entries, len(names) > MAX_ENTRIES


async def list_files(
    km: KernelManager, kernel_id: str, path: str
) -> tuple[list[storage_pb2.FileEntry], bool]:
    root = _scratch(km, kernel_id)
    target = contained_path(root, path)
    if not target.exists():
        raise NotFound(f"{path} does not exist", metadata={"path": path})
    if not target.is_dir():
        raise _path_type_mismatch(path, "directory")
    return await asyncio.to_thread(_list, root.resolve(), target)
