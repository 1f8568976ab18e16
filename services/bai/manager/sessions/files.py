"""Files in and out of a running kernel's /home/work, relayed to its agent.

The manager checks what it can without the kernel (who may, which kernel, the
shape of the path, chunk sizes, the announced size) and relays the bytes; the
agent resolves the path inside the kernel's scratch directory and is the final
judge of containment (symlinks planted by the kernel included).
"""

from __future__ import annotations

import asyncio
import posixpath
import uuid
from collections.abc import AsyncIterator
from dataclasses import dataclass
from typing import Any

from bai.api.agent.v1 import agent_pb2
from bai.api.common.v1 import storage_pb2
from bai.common.errors import FieldViolation, InvalidArgument, NotFound
from bai.manager.agents.pool import AgentClientPool, agent_errors
from bai.manager.db.compute import KernelRow
from bai.manager.sessions import control
from bai.manager.sessions.queries import LoadedSession

WORK_DIR = "/home/work"
MAX_CHUNK = 1 << 20
MAX_PATH = 4096
# A kernel serves files only while it runs; a degraded session still has running kernels.
READY_SESSION = frozenset({"RUNNING", "RUNNING_DEGRADED"})


@dataclass(frozen=True)
class Target:
    """The kernel that holds the file and the agent that serves it."""

    agent_id: str
    kernel_id: str


@dataclass(frozen=True)
class Stored:
    """An uploaded file as the agent wrote it (path relative to /home/work)."""

    path: str
    size: int


def path_violation(raw: str, *, required: bool) -> str | None:
    """Why `raw` cannot name something under /home/work, or None.

    Mirrors the agent's checks that need no file system: relative to
    /home/work (absolute only below it), no NUL, no `..` climbing out.
    """
    if not raw:
        return "is required" if required else None
    if "\x00" in raw:
        return "must not contain NUL characters"
    if len(raw) > MAX_PATH:
        return f"must be at most {MAX_PATH} characters"
    relative = raw
    if raw == WORK_DIR or raw.startswith(WORK_DIR + "/"):
        relative = raw[len(WORK_DIR) :].lstrip("/")
    if relative.startswith("/"):
        return f"must be relative to {WORK_DIR}"
    normal = posixpath.normpath(relative) if relative else "."
    if normal == ".." or normal.startswith("../"):
        return f"escapes {WORK_DIR}"
    return None


def check_request(
    *, path: str, kernel_id: str, prefix: str = "", path_required: bool = False
) -> None:
    """INVALID_FIELD for a bad path or kernel id (`prefix` names the enclosing message)."""
    violations = []
    why = path_violation(path, required=path_required)
    if why is not None:
        violations.append(FieldViolation(prefix + "path", why))
    if kernel_id:
        try:
            uuid.UUID(kernel_id)
        except ValueError:
            violations.append(FieldViolation(prefix + "kernel_id", "must be a UUID"))
    if violations:
        raise InvalidArgument(violations)


def check_size(size: int) -> None:
    if size < 0:
        raise InvalidArgument.field("header.size", "must not be negative")


def _kernel(loaded: LoadedSession, kernel_id: str) -> KernelRow:
    if not kernel_id:
        main = loaded.main_kernel
        if main is None:
            raise NotFound("the session has no kernels")
        return main
    for kernel in loaded.kernels:
        if str(kernel.id) == kernel_id:
            return kernel
    raise NotFound("kernel not found in this session", metadata={"kernel_id": kernel_id})


def target(loaded: LoadedSession, kernel_id: str) -> Target:
    """The named kernel (empty: the main one); SESSION_NOT_READY unless it runs."""
    kernel = _kernel(loaded, kernel_id)
    if loaded.session.status not in READY_SESSION or (
        kernel.status != "RUNNING" or not kernel.agent_id
    ):
        raise control.not_ready(loaded.session)
    return Target(kernel.agent_id, str(kernel.id))


def _too_much(size: int) -> InvalidArgument:
    return InvalidArgument.field("chunk", f"more than header.size={size} bytes")


async def upload(
    pool: AgentClientPool,
    to: Target,
    path: str,
    size: int,
    chunks: AsyncIterator[bytes],
) -> Stored:
    """Relay `size` bytes from `chunks` into the kernel's `path`.

    A chunk over 1 MiB, more bytes than announced or fewer (when `chunks`
    ends) is INVALID_FIELD; the agent call is then cancelled, so the agent
    drops its partial file and the old one, if any, stays.
    """
    stub: Any = await pool.stub(to.agent_id)
    call: Any = stub.UploadFile(metadata=pool.metadata(to.agent_id))
    header = agent_pb2.UploadFileHeader(kernel_id=to.kernel_id, path=path, size=size)
    sent = 0
    try:
        with agent_errors(to.agent_id):
            try:
                await call.write(agent_pb2.UploadFileRequest(header=header))
                async for chunk in chunks:
                    if len(chunk) > MAX_CHUNK:
                        raise InvalidArgument.field("chunk", f"must be at most {MAX_CHUNK} bytes")
                    sent += len(chunk)
                    if sent > size:
                        raise _too_much(size)
                    await call.write(agent_pb2.UploadFileRequest(chunk=chunk))
                if sent != size:
                    raise InvalidArgument.field("header.size", f"{size} announced, {sent} sent")
                await call.done_writing()
            except asyncio.InvalidStateError:
                pass  # The agent ended the call early: awaiting it raises its status.
            try:
                reply = await call
            except Exception:
                await _drain(chunks, size - sent)
                raise
    finally:
        call.cancel()
    return Stored(reply.path, reply.size)


async def _drain(chunks: AsyncIterator[bytes], left: int) -> None:
    """Read what the client still sends (at most what it announced) before failing.

    A status sent while the client is still writing its stream can reach the
    client as INTERNAL ("Internal error from Core") instead of the real reason.
    """
    async for chunk in chunks:
        left -= len(chunk)
        if left < 0:
            return


async def download(
    pool: AgentClientPool, source: Target, path: str
) -> AsyncIterator[tuple[bytes, int | None]]:
    """(chunk, total size on the first chunk else None) of the kernel's file."""
    stub: Any = await pool.stub(source.agent_id)
    request = agent_pb2.DownloadFileRequest(kernel_id=source.kernel_id, path=path)
    call: Any = stub.DownloadFile(request, metadata=pool.metadata(source.agent_id))
    first = True
    try:
        with agent_errors(source.agent_id):
            async for reply in call:
                yield reply.chunk, reply.size if first else None
                first = False
    finally:
        call.cancel()


async def list_files(
    pool: AgentClientPool, source: Target, path: str
) -> tuple[list[storage_pb2.FileEntry], bool]:
    """The directory's entries (by name, at most 10000) and whether there were more."""
    request = agent_pb2.ListFilesRequest(kernel_id=source.kernel_id, path=path)
    reply = await pool.call(source.agent_id, "ListFiles", request)
    return list(reply.entries), bool(reply.truncated)
