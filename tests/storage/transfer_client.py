"""Client-side helpers for FileService in tests: upload, download, archive."""

from __future__ import annotations

import hashlib
from collections.abc import AsyncIterator

from bai.api.storage.v1 import file_pb2, file_pb2_grpc
from tests.e2e.waits import eventually

CHUNK = 256 * 1024


async def _messages(
    header: file_pb2.UploadHeader, data: bytes, chunk: int
) -> AsyncIterator[file_pb2.UploadRequest]:
    yield file_pb2.UploadRequest(header=header)
    for at in range(0, len(data), chunk):
        yield file_pb2.UploadRequest(chunk=data[at : at + chunk])


async def upload(
    stub: file_pb2_grpc.FileServiceStub,
    token: str,
    data: bytes,
    *,
    path: str = "",
    total_size: int | None = None,
    offset: int = 0,
    sha256: str | None = None,
    chunk: int = CHUNK,
) -> file_pb2.UploadResponse:
    """Send `data` starting at `offset` of a file of `total_size` bytes (default: all of it)."""
    header = file_pb2.UploadHeader(
        token=token,
        path=path,
        total_size=offset + len(data) if total_size is None else total_size,
        offset=offset,
        sha256=hashlib.sha256(data).hexdigest() if sha256 is None else sha256,
    )
    reply: file_pb2.UploadResponse = await stub.Upload(_messages(header, data, chunk))
    return reply


async def download(
    stub: file_pb2_grpc.FileServiceStub,
    token: str,
    path: str = "",
    offset: int = 0,
    length: int = 0,
) -> tuple[bytes, list[file_pb2.DownloadResponse]]:
    replies = []
    request = file_pb2.DownloadRequest(token=token, path=path, offset=offset, length=length)
    async for reply in stub.Download(request):
        replies.append(reply)
    return b"".join(r.chunk for r in replies), replies


async def committed_at_least(stub: file_pb2_grpc.FileServiceStub, token: str, size: int) -> None:
    """Wait until the proxy has committed `size` bytes of the token's upload."""

    async def reached() -> bool:
        state = await stub.GetUploadOffset(file_pb2.GetUploadOffsetRequest(token=token))
        return state.committed_size >= size

    await eventually(reached, f"{size} bytes committed")
