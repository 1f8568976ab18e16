"""Files in and out of a running session's /home/work.

    from bai.client import Client, download_file, upload_file

    with Client.from_env() as client:
        upload_file(client, session_id, "data.csv", "inputs/data.csv")
        with open("result.bin", "wb") as sink:
            download_file(client, session_id, "outputs/result.bin", sink)

``SessionService.UploadSessionFile`` is client streaming: a header that
announces the size, then chunks of at most 1 MiB. :func:`upload_file` builds
that stream from a local file, bytes or a seekable binary stream.
:func:`download_file` writes the chunks of ``DownloadSessionFile`` to a binary
sink and checks that as many bytes arrived as the server announced. Both take
a ``Client`` or an ``AsyncClient`` (then they are awaited); paths are relative
to /home/work; ``kernel_id`` empty means the main kernel.
"""

# The timeout parameters are gRPC deadlines passed through, not asyncio timeouts.
# ruff: noqa: ASYNC109

from __future__ import annotations

import io
import os
from collections.abc import Awaitable, Iterator
from typing import BinaryIO, TypeAlias, overload

import grpc

from bai.api.manager.v1 import session_pb2
from bai.client import errors
from bai.client._client import AsyncClient, Client
from bai.client._transport import Metadata

CHUNK_SIZE = 1 << 20
"""Bytes per upload message: the most the server takes."""

Source: TypeAlias = "str | os.PathLike[str] | bytes | BinaryIO"


def _opened(source: Source) -> tuple[BinaryIO, int, bool]:
    """A binary stream positioned at the data, how many bytes follow, and
    whether we opened it (and so close it)."""
    if isinstance(source, bytes):
        return io.BytesIO(source), len(source), True
    if isinstance(source, (str, os.PathLike)):
        stream = open(source, "rb")  # closed by the request iterator
        return stream, os.fstat(stream.fileno()).st_size, True
    start = source.tell()
    size = source.seek(0, io.SEEK_END) - start
    source.seek(start)
    return source, size, False


def _requests(
    header: session_pb2.SessionFileHeader, stream: BinaryIO, owned: bool, chunk_size: int
) -> Iterator[session_pb2.UploadSessionFileRequest]:
    try:
        yield session_pb2.UploadSessionFileRequest(header=header)
        left = header.size
        while left > 0:
            data = stream.read(min(chunk_size, left))
            if not data:
                break  # The source shrank: the server answers the size mismatch.
            left -= len(data)
            yield session_pb2.UploadSessionFileRequest(chunk=data)
    finally:
        if owned:
            stream.close()


def upload_requests(
    session_id: str,
    source: Source,
    path: str,
    *,
    kernel_id: str = "",
    chunk_size: int = CHUNK_SIZE,
) -> Iterator[session_pb2.UploadSessionFileRequest]:
    """The request stream of UploadSessionFile: the header, then the data in chunks.

    The source is opened and measured now (a missing file raises OSError here,
    not inside the call)."""
    if not 0 < chunk_size <= CHUNK_SIZE:
        raise ValueError(f"chunk_size must be within 1..{CHUNK_SIZE}")
    stream, size, owned = _opened(source)
    header = session_pb2.SessionFileHeader(
        session_id=session_id, kernel_id=kernel_id, path=path, size=size
    )
    return _requests(header, stream, owned, chunk_size)


@overload
def upload_file(
    client: Client,
    session_id: str,
    source: Source,
    path: str,
    *,
    kernel_id: str = ...,
    timeout: float | None = ...,
    metadata: Metadata = ...,
) -> session_pb2.UploadSessionFileResponse: ...


@overload
def upload_file(
    client: AsyncClient,
    session_id: str,
    source: Source,
    path: str,
    *,
    kernel_id: str = ...,
    timeout: float | None = ...,
    metadata: Metadata = ...,
) -> Awaitable[session_pb2.UploadSessionFileResponse]: ...


def upload_file(
    client: Client | AsyncClient,
    session_id: str,
    source: Source,
    path: str,
    *,
    kernel_id: str = "",
    timeout: float | None = None,
    metadata: Metadata = (),
) -> session_pb2.UploadSessionFileResponse | Awaitable[session_pb2.UploadSessionFileResponse]:
    """Upload ``source`` (a local path, bytes or a seekable binary stream, read from
    its current position) to ``path`` in the session; parents are created and an
    existing file is replaced. The reply has the stored path and size."""
    requests = upload_requests(session_id, source, path, kernel_id=kernel_id)
    return client.sessions.upload_session_file(requests, timeout=timeout, metadata=metadata)


def _incomplete(path: str, received: int, announced: int) -> errors.Internal:
    return errors.Internal(
        f"{path}: received {received} of {announced} bytes", code=grpc.StatusCode.DATA_LOSS
    )


async def _download_async(
    client: AsyncClient,
    request: session_pb2.DownloadSessionFileRequest,
    sink: BinaryIO,
    timeout: float | None,
    metadata: Metadata,
) -> int:
    received, announced = 0, 0
    stream = client.sessions.download_session_file(request, timeout=timeout, metadata=metadata)
    async for reply in stream:
        announced = announced or reply.size
        sink.write(reply.chunk)
        received += len(reply.chunk)
    if received != announced:
        raise _incomplete(request.path, received, announced)
    return received


def _download_sync(
    client: Client,
    request: session_pb2.DownloadSessionFileRequest,
    sink: BinaryIO,
    timeout: float | None,
    metadata: Metadata,
) -> int:
    received, announced = 0, 0
    for reply in client.sessions.download_session_file(request, timeout=timeout, metadata=metadata):
        announced = announced or reply.size
        sink.write(reply.chunk)
        received += len(reply.chunk)
    if received != announced:
        raise _incomplete(request.path, received, announced)
    return received


@overload
def download_file(
    client: Client,
    session_id: str,
    path: str,
    sink: BinaryIO,
    *,
    kernel_id: str = ...,
    timeout: float | None = ...,
    metadata: Metadata = ...,
) -> int: ...


@overload
def download_file(
    client: AsyncClient,
    session_id: str,
    path: str,
    sink: BinaryIO,
    *,
    kernel_id: str = ...,
    timeout: float | None = ...,
    metadata: Metadata = ...,
) -> Awaitable[int]: ...


def download_file(
    client: Client | AsyncClient,
    session_id: str,
    path: str,
    sink: BinaryIO,
    *,
    kernel_id: str = "",
    timeout: float | None = None,
    metadata: Metadata = (),
) -> int | Awaitable[int]:
    """Write the session's file ``path`` to ``sink``; returns the byte count.

    A stream that ends short of the announced size raises :class:`errors.Internal`
    (code DATA_LOSS); what arrived is already in ``sink``.
    """
    request = session_pb2.DownloadSessionFileRequest(
        session_id=session_id, kernel_id=kernel_id, path=path
    )
    if isinstance(client, AsyncClient):
        return _download_async(client, request, sink, timeout, metadata)
    return _download_sync(client, request, sink, timeout, metadata)
