"""GET/HEAD /storage/v1/download and PUT/HEAD /storage/v1/upload.

The token (query `token=`, or `Authorization: Bearer`) scopes the call as on
FileService; `path=` names a file under the token's path. Uploads take the
bytes from `Upload-Offset` (default 0) of a file of `Upload-Length` bytes
(default: offset + Content-Length), with the whole file's sha256 in
`X-Bai-Sha256` when the caller wants it checked; HEAD on the upload URL
answers the committed offset, so a broken upload resumes where it stopped.
"""

from __future__ import annotations

import asyncio
import json
import os
import urllib.parse
from collections.abc import AsyncIterator
from contextlib import aclosing
from contextvars import ContextVar

from aiohttp import ClientPayloadError, web

from bai.common.errors import InvalidArgument
from bai.storage import tokens
from bai.storage.context import StorageContext
from bai.storage.http import zero_copy
from bai.storage.http.ranges import Unsatisfiable, requested_span
from bai.storage.paths import Parts
from bai.storage.quota import VFolderId
from bai.storage.transfers import download
from bai.storage.transfers.archive import folder_zip
from bai.storage.transfers.pipeline import prefetched, run_upload
from bai.storage.transfers.scope import READ_OPS, authorize
from bai.storage.transfers.upload import Upload, UploadRequest, UploadState, upload_offset
from bai.storage.volumes.vfs import VfsVolume

# Received bytes go to the disk thread in blocks of about this size.
WRITE_BLOCK_BYTES = 1 << 20


# True once the current request's response has begun: a failure after that can
# only cut the connection (the status line is gone), not become an error reply.
# (Each request runs in its connection's task; the edge resets it per request.)
response_started: ContextVar[bool] = ContextVar("response_started", default=False)


async def started(request: web.Request, response: web.StreamResponse) -> None:
    response_started.set(True)
    await response.prepare(request)


def _header_int(request: web.Request, name: str, default: int) -> int:
    raw = request.headers.get(name)
    if raw is None:
        return default
    try:
        value = int(raw)
    except ValueError:
        raise InvalidArgument.field(name, "must be a decimal integer") from None
    if value < 0:
        raise InvalidArgument.field(name, "must be >= 0")
    return value


async def _write_span(
    request: web.Request, response: web.StreamResponse, fd: int, start: int, end: int
) -> None:
    """Bytes [start, end) of `fd` after the headers: by sendfile where the
    connection has a socket (zero_copy), else in read chunks."""
    transport = request.transport
    if transport is None:
        raise ConnectionResetError("the client went away")
    if await zero_copy.send_span(transport, fd, start, end - start):
        return
    async with aclosing(prefetched(download.read_chunks(fd, start, end))) as chunks:
        async for _, block in chunks:
            await response.write(block)


class TransferHandlers:
    def __init__(self, ctx: StorageContext) -> None:
        self.ctx = ctx

    def _authorize(
        self, request: web.Request, ops: tuple[tokens.Op, ...]
    ) -> tuple[tokens.TransferClaims, VfsVolume, VFolderId, Parts]:
        headers = {"authorization": request.headers.get("authorization", "")}
        token = tokens.bearer(headers, request.query.get("token", ""))
        return authorize(self.ctx, token, request.query.get("path", ""), ops)

    async def download(self, request: web.Request) -> web.StreamResponse:
        claims, volume, vf, parts = self._authorize(request, READ_OPS)
        if claims.op == "archive-download":
            return await self._archive(request, volume, vf, parts)
        fd, size = await asyncio.to_thread(download.open_file, volume, vf, parts)
        try:
            return await self._send_file(request, fd, size, parts[-1])
        finally:
            os.close(fd)

    async def _send_file(
        self, request: web.Request, fd: int, size: int, name: str
    ) -> web.StreamResponse:
        try:
            span = requested_span(request.headers.get("range"), size)
        except Unsatisfiable:
            return web.Response(status=416, headers={"content-range": f"bytes */{size}"})
        start, end = span or (0, size)
        response = web.StreamResponse(status=206 if span else 200)
        response.content_length = end - start
        response.content_type = "application/octet-stream"
        response.headers["accept-ranges"] = "bytes"
        response.headers["content-disposition"] = _attachment(name)
        if span:
            response.headers["content-range"] = f"bytes {start}-{end - 1}/{size}"
        await started(request, response)
        if request.method != "HEAD":
            await _write_span(request, response, fd, start, end)
        await response.write_eof()
        return response

    async def _archive(
        self, request: web.Request, volume: VfsVolume, vf: VFolderId, parts: Parts
    ) -> web.StreamResponse:
        response = web.StreamResponse()
        response.content_type = "application/zip"
        name = (parts[-1] if parts else "folder") + ".zip"
        response.headers["content-disposition"] = _attachment(name)
        response.enable_chunked_encoding()
        zipped = folder_zip(volume, vf, parts)
        try:
            # The first chunk is read before the status goes out, so a missing
            # directory is still a 404 rather than a broken 200.
            chunks = prefetched(zipped)
            async with aclosing(chunks):
                first = await anext(chunks, b"")
                await started(request, response)
                if request.method != "HEAD":
                    await _write_all(response, first, chunks)
        finally:
            await asyncio.to_thread(zipped.close)
        await response.write_eof()
        return response

    async def upload(self, request: web.Request) -> web.Response:
        claims, volume, vf, parts = self._authorize(request, ("upload",))
        offset = _header_int(request, "upload-offset", 0)
        length = request.content_length
        total = _header_int(request, "upload-length", offset + (length or 0))
        if request.headers.get("upload-length") is None and length is None:
            raise InvalidArgument.field("upload-length", "is required without content-length")
        mode = request.headers.get("x-bai-mode", "")
        upload = Upload(
            volume,
            UploadRequest(
                vf=vf,
                parts=parts,
                total_size=total,
                offset=offset,
                sha256=request.headers.get("x-bai-sha256", "").strip().lower(),
                mode=_mode(mode),
                max_size=claims.max_size,
            ),
        )
        state = await run_upload(upload, _blocks(request))
        return _upload_reply(state, total)

    async def upload_status(self, request: web.Request) -> web.Response:
        _, volume, vf, parts = self._authorize(request, ("upload",))
        committed, total, complete = await asyncio.to_thread(upload_offset, volume, vf, parts)
        return web.Response(
            headers={
                "upload-offset": str(committed),
                "upload-length": str(total),
                "x-bai-upload-complete": "true" if complete else "false",
                "cache-control": "no-store",
            }
        )


async def _blocks(request: web.Request) -> AsyncIterator[bytes]:
    """The body in ~1 MiB blocks for the disk thread."""
    pending: list[bytes] = []
    size = 0
    try:
        async for piece in request.content.iter_any():
            pending.append(piece)
            size += len(piece)
            if size >= WRITE_BLOCK_BYTES:
                yield b"".join(pending)
                pending, size = [], 0
    except (ConnectionError, ClientPayloadError):
        # Keep what did arrive, so that the resumed upload sends less.
        if pending:
            yield b"".join(pending)
        raise
    if pending:
        yield b"".join(pending)


async def _write_all(
    response: web.StreamResponse, first: bytes, rest: AsyncIterator[bytes]
) -> None:
    if first:
        await response.write(first)
    async for block in rest:
        if block:
            await response.write(block)


def _upload_reply(state: UploadState, total: int) -> web.Response:
    body = {
        "committed_size": state.committed_size,
        "total_size": total,
        "complete": state.complete,
        "sha256": state.sha256,
    }
    return web.Response(
        text=json.dumps(body),
        content_type="application/json",
        headers={"upload-offset": str(state.committed_size)},
    )


def _mode(raw: str) -> int:
    if not raw:
        return 0
    try:
        return int(raw, 8)
    except ValueError:
        raise InvalidArgument.field("x-bai-mode", "must be octal permission bits") from None


def _attachment(name: str) -> str:
    # filename* (RFC 6266) carries any name; the plain one is an ASCII stand-in for
    # clients that read only it (curl -J).
    plain = "".join(c if " " <= c < "\x7f" and c not in '"\\%' else "_" for c in name)
    quoted = urllib.parse.quote(name, safe="")
    return f"attachment; filename=\"{plain}\"; filename*=UTF-8''{quoted}"
