"""File contents in and out of virtual folders, straight to the storage proxy.

    from bai.client import Client
    from bai.client.vfolder_transfers import download_file, upload_file

    with Client.from_env() as client:
        upload_file(client, folder_id, "data.csv", "inputs/data.csv")
        with open("model.bin", "wb") as sink:
            download_file(client, folder_id, "outputs/model.bin", sink)

(Directories: bai.client.vfolder_archive.)

The bytes never pass through the manager: each transfer asks it for a token
(``RequestUploadToken``/``RequestDownloadToken``), then streams to or from the
storage proxy's ``FileService`` at the address the token came with (the Envoy
gateway in a real deployment; ``file_service_address`` overrides it, and an
empty address means the client's own endpoint, over the client's own channel).
Chunks are 1 MiB; no file is ever held in memory.

A broken transfer resumes by itself (see :class:`TransferRetry`): an upload asks
``GetUploadOffset`` how much is committed and continues from there, a download
asks for the rest with ``offset``; an expired or rejected token is replaced once
per failure streak. The server checks an upload against its sha256 before it
appears under its name. ``progress(done, total)`` is called after each chunk
(for uploads from gRPC's sending thread); ``total`` is 0 while unknown.
"""

from __future__ import annotations

import hashlib
import os
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import BinaryIO

import grpc

from bai.api.manager.v1 import vfolder_pb2
from bai.api.storage.v1 import file_pb2, file_pb2_grpc
from bai.client import errors
from bai.client._client import Client, parse_address

CHUNK_SIZE = 1 << 20
RENEW_BEFORE = timedelta(seconds=30)
"""A token this close to expiry is replaced before the next try."""

Progress = Callable[[int, int], None]
IssueTicket = Callable[[], vfolder_pb2.TransferTicket]

_BROKEN_CODES = frozenset(
    {grpc.StatusCode.UNAVAILABLE, grpc.StatusCode.ABORTED, grpc.StatusCode.CANCELLED}
)


@dataclass(frozen=True)
class TransferRetry:
    """How often a broken transfer is resumed: ``attempts`` tries in all (the first
    included), waiting ``min(max_backoff, initial_backoff * 2**(n-1))`` before try n+1."""

    attempts: int = 8
    initial_backoff: float = 0.5
    max_backoff: float = 8.0

    def backoff(self, retry_number: int) -> float:
        return float(min(self.max_backoff, self.initial_backoff * 2 ** (retry_number - 1)))


DEFAULT_RETRY = TransferRetry()


@dataclass(frozen=True)
class UploadResult:
    path: str
    size: int
    sha256: str
    attempts: int


@dataclass(frozen=True)
class DownloadResult:
    path: str
    size: int
    """Bytes written to the sink."""
    attempts: int


def resumable(err: errors.BaiError) -> bool:
    """Whether a failed try is worth resuming: a broken connection, a proxy that is
    restarting, the previous try of the same upload still being torn down, an offset
    that moved, a token to replace. A transport failure without a server status
    (RST_STREAM) counts as broken."""
    if err.code in _BROKEN_CODES:
        return True
    if err.reason in ("UPLOAD_OFFSET_MISMATCH", "TRANSFER_TOKEN_INVALID"):
        return True
    transport = err.status is None and err.reason == err.code.name
    return transport and err.code in (grpc.StatusCode.INTERNAL, grpc.StatusCode.UNKNOWN)


def file_sha256(path: str | os.PathLike[str], chunk_size: int = CHUNK_SIZE) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as stream:
        while block := stream.read(chunk_size):
            digest.update(block)
    return digest.hexdigest()


class TransferSession:
    """One transfer's token and FileService stub; a new token on demand."""

    def __init__(self, client: Client, issue: IssueTicket, address: str | None) -> None:
        self._client = client
        self._issue = issue
        self._address = address
        self._channels: dict[str, grpc.Channel] = {}
        self.ticket = issue()
        self.renewed = False

    @property
    def token(self) -> str:
        return self.ticket.token

    def stub(self) -> file_pb2_grpc.FileServiceStub:
        address = self._address or self.ticket.file_service_address or self._client.address
        if address == self._client.address:  # the gateway: its channel has the right TLS
            return file_pb2_grpc.FileServiceStub(self._client._transport.channel)
        if address not in self._channels:
            target, tls = parse_address(address)
            self._channels[address] = (
                grpc.secure_channel(target, grpc.ssl_channel_credentials())
                if tls
                else grpc.insecure_channel(target)
            )
        return file_pb2_grpc.FileServiceStub(self._channels[address])

    def prepare_retry(self, err: errors.BaiError) -> None:
        """Replace the token when it was refused (once per failure streak) or expires soon."""
        if err.reason == "TRANSFER_TOKEN_INVALID":
            if self.renewed:
                raise err
            self.ticket, self.renewed = self._issue(), True
            return
        expires = self.ticket.expires_at.ToDatetime(tzinfo=UTC)
        if self.ticket.HasField("expires_at") and expires - datetime.now(UTC) < RENEW_BEFORE:
            self.ticket = self._issue()

    def progressed(self) -> None:
        self.renewed = False

    def close(self) -> None:
        for channel in self._channels.values():
            channel.close()
        self._channels.clear()


def retry_wait(
    session: TransferSession, retry: TransferRetry, err: errors.BaiError, attempt: int
) -> None:
    """Raise ``err`` when it is final; otherwise wait and get ready for the next try."""
    if attempt >= retry.attempts or not resumable(err):
        raise err
    time.sleep(retry.backoff(attempt))
    session.prepare_retry(err)


class _Chunks:
    """The Upload request stream from ``offset``; notes a local read error, which grpc
    would otherwise turn into a cancelled call."""

    def __init__(
        self,
        header: file_pb2.UploadHeader,
        path: str | os.PathLike[str],
        progress: Progress | None,
    ) -> None:
        self.header = header
        self.path = path
        self.progress = progress
        self.error: OSError | None = None
        self.sent_all = False

    def __iter__(self) -> Iterator[file_pb2.UploadRequest]:
        yield file_pb2.UploadRequest(header=self.header)
        position, total = self.header.offset, self.header.total_size
        try:
            with open(self.path, "rb") as stream:
                stream.seek(position)
                while position < total:
                    data = stream.read(min(CHUNK_SIZE, total - position))
                    if not data:
                        return  # the file shrank: the server answers the short upload
                    position += len(data)
                    yield file_pb2.UploadRequest(chunk=data)
                    if self.progress is not None:
                        self.progress(position, total)
            self.sent_all = True
        except OSError as exc:
            self.error = exc
            raise


def _committed(session: TransferSession, size: int, sent_all: bool) -> tuple[int, bool]:
    """(where to resume, whether our upload is already complete).

    "complete" only says that a whole file is in place: ours when the last try sent
    every byte (its reply was lost), else the file we are replacing."""
    reply = session.stub().GetUploadOffset(file_pb2.GetUploadOffsetRequest(token=session.token))
    if reply.complete:
        return (size, True) if sent_all else (0, False)
    if reply.committed_size and reply.total_size != size:
        raise errors.FailedPrecondition(
            f"another upload of {reply.total_size} bytes to this path is unfinished",
            reason="UPLOAD_OFFSET_MISMATCH",
        )
    return reply.committed_size, False


def upload_file(
    client: Client,
    vfolder_id: str,
    source: str | os.PathLike[str],
    path: str,
    *,
    sha256: str | None = None,
    mode: int = 0,
    progress: Progress | None = None,
    retry: TransferRetry = DEFAULT_RETRY,
    file_service_address: str | None = None,
    ttl: timedelta | None = None,
) -> UploadResult:
    """Upload the local file ``source`` to ``path`` in the folder (parents are created,
    an existing file is replaced once the upload is complete and checked).

    ``sha256`` (lowercase hex) saves reading the file twice; it is computed when
    absent. Each call starts a new upload (offset 0 replaces whatever an earlier,
    interrupted call left); within the call, broken streams are resumed. Raises
    :class:`errors.BaiError` subclasses, or OSError for the local file.
    """
    size = os.stat(source).st_size
    digest = sha256 or file_sha256(source)
    session = TransferSession(
        client,
        lambda: (
            client.vfolders.request_upload_token(
                vfolder_id=vfolder_id, path=path, size=size, ttl=ttl
            ).ticket
        ),
        file_service_address,
    )
    offset: int | None = 0
    attempt = 0
    chunks: _Chunks | None = None
    try:
        while True:
            attempt += 1
            try:
                if offset is None:
                    sent_all = chunks is not None and chunks.sent_all
                    offset, complete = _committed(session, size, sent_all)
                    session.progressed()  # the server took the token
                    if complete:
                        return UploadResult(path, size, digest, attempt)
                header = file_pb2.UploadHeader(
                    token=session.token, total_size=size, offset=offset, sha256=digest, mode=mode
                )
                chunks = _Chunks(header, source, progress)
                reply = session.stub().Upload(iter(chunks))
                if reply.complete:
                    return UploadResult(path, size, reply.sha256 or digest, attempt)
                raise errors.Unavailable(
                    f"upload ended at {reply.committed_size} of {size} bytes", reason="UNAVAILABLE"
                )
            except grpc.RpcError as exc:
                if chunks is not None and chunks.error is not None:
                    raise chunks.error from exc
                err = errors.from_rpc_error(exc)
            except errors.Unavailable as exc:
                err = exc
            retry_wait(session, retry, err, attempt)
            committed = err.metadata.get("committed_size", "")
            # The same offset refused again means another size: GetUploadOffset says so.
            fresh = committed.isdigit() and int(committed) != offset
            offset = int(committed) if fresh else None
    finally:
        session.close()


def download_token(
    client: Client, vfolder_id: str, path: str, archive: bool, ttl: timedelta | None
) -> IssueTicket:
    def issue() -> vfolder_pb2.TransferTicket:
        return client.vfolders.request_download_token(
            vfolder_id=vfolder_id, path=path, archive=archive, ttl=ttl
        ).ticket

    return issue


def stream_once(
    session: TransferSession,
    request: file_pb2.DownloadRequest,
    sink: BinaryIO,
    on_chunk: Callable[[file_pb2.DownloadResponse], None],
) -> None:
    call = session.stub().Download(request)
    try:
        for reply in call:
            sink.write(reply.chunk)
            on_chunk(reply)
    finally:
        call.cancel()


def download_file(
    client: Client,
    vfolder_id: str,
    path: str,
    sink: BinaryIO,
    *,
    offset: int = 0,
    length: int = 0,
    progress: Progress | None = None,
    retry: TransferRetry = DEFAULT_RETRY,
    file_service_address: str | None = None,
    ttl: timedelta | None = None,
) -> DownloadResult:
    """Write the folder's file ``path`` (or ``length`` bytes from ``offset``; 0: to the
    end) to ``sink``; a broken stream is resumed where it broke. Returns the bytes
    written. A stream that keeps ending short of the file raises
    :class:`errors.Unavailable` once the retries are spent; what arrived is in ``sink``."""
    issue = download_token(client, vfolder_id, path, False, ttl)
    session = TransferSession(client, issue, file_service_address)
    received, expected, attempt = 0, length or None, 0

    def on_chunk(reply: file_pb2.DownloadResponse) -> None:
        nonlocal received, expected
        if reply.offset != offset + received:
            raise errors.Internal(
                f"{path}: chunk at {reply.offset}, expected {offset + received}",
                code=grpc.StatusCode.DATA_LOSS,
            )
        if expected is None and reply.total_size:
            expected = reply.total_size - offset
        received += len(reply.chunk)
        session.progressed()
        if progress is not None:
            progress(received, expected or 0)

    try:
        while True:
            attempt += 1
            left = length - received if length else 0
            request = file_pb2.DownloadRequest(
                token=session.token, offset=offset + received, length=left
            )
            try:
                stream_once(session, request, sink, on_chunk)
                if expected is None or received == expected:
                    return DownloadResult(path, received, attempt)
                err: errors.BaiError = errors.Unavailable(
                    f"{path}: stream ended at {received} of {expected} bytes", reason="UNAVAILABLE"
                )
            except grpc.RpcError as exc:
                err = errors.from_rpc_error(exc)
            retry_wait(session, retry, err, attempt)
    finally:
        session.close()
