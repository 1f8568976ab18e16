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
storage proxy at the address the token came with (the Envoy gateway in a real
deployment; ``file_service_address`` overrides it, and an empty address means
the client's own endpoint). Chunks are 1 MiB; no file is ever held in memory.

``transport`` picks how: ``"http"``, the plain-HTTP endpoints under
``/storage/v1/`` (bai.client.vfolder_http: several times faster); ``"grpc"``,
``FileService`` (over the client's own channel when the address is its
endpoint); ``"auto"`` (the default) tries HTTP first and, when the first answer
shows no HTTP endpoint at the address (a refused connection, a port that does
not speak HTTP/1.1 such as a storage proxy's gRPC port, a 404 or another reply
without the endpoint's headers), does the whole transfer over gRPC.

A broken transfer resumes by itself (see :class:`TransferRetry`): an upload asks
how much is committed and continues from there, a download asks for the rest
(``offset`` over gRPC, ``Range`` over HTTP); an expired or rejected token is
replaced once per failure streak. The server checks an upload against its
sha256 before it appears under its name. ``progress(done, total)`` is called
after each chunk (for gRPC uploads from gRPC's sending thread); ``total`` is 0
while unknown.
"""

from __future__ import annotations

import hashlib
import os
import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import BinaryIO, Literal, TypeVar

import grpc

from bai.api.manager.v1 import vfolder_pb2
from bai.api.storage.v1 import file_pb2_grpc
from bai.client import errors
from bai.client._client import Client, parse_address
from bai.client.vfolder_grpc import GrpcFiles
from bai.client.vfolder_http import (
    CHUNK_SIZE,
    FileTransport,
    HttpFiles,
    NotTransferEndpoint,
    OnBlock,
    Progress,
    UploadState,
)

RENEW_BEFORE = timedelta(seconds=30)
"""A token this close to expiry is replaced before the next try."""

Transport = Literal["auto", "grpc", "http"]
IssueTicket = Callable[[], vfolder_pb2.TransferTicket]
T = TypeVar("T")

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
    """One transfer's token and transport; a new token on demand. In "auto", the
    first answer that shows no HTTP endpoint moves the rest of the transfer to gRPC."""

    def __init__(
        self,
        client: Client,
        issue: IssueTicket,
        address: str | None,
        transport: Transport = "auto",
    ) -> None:
        self._client = client
        self._issue = issue
        self._address = address
        self.transport = transport
        self._channels: dict[str, grpc.Channel] = {}
        self._http: dict[str, HttpFiles] = {}
        self.ticket = issue()
        self.renewed = False

    @property
    def token(self) -> str:
        return self.ticket.token

    def address(self) -> str:
        return self._address or self.ticket.file_service_address or self._client.address

    def stub(self) -> file_pb2_grpc.FileServiceStub:
        address = self.address()
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

    def files(self) -> FileTransport:
        if self.transport == "grpc":
            return GrpcFiles(self.stub())
        address = self.address()
        if address not in self._http:
            self._http[address] = HttpFiles(address)
        return self._http[address]

    def _run(self, op: Callable[[FileTransport], T]) -> T:
        try:
            return op(self.files())
        except NotTransferEndpoint as exc:
            if self.transport == "http":
                raise exc.error from exc
            self.transport = "grpc"
            return op(self.files())

    def upload_offset(self) -> UploadState:
        return self._run(lambda files: files.upload_offset(self.token))

    def upload(
        self,
        source: str | os.PathLike[str],
        offset: int,
        total: int,
        sha256: str,
        mode: int,
        progress: Progress,
    ) -> UploadState:
        return self._run(
            lambda files: files.upload(
                self.token,
                source,
                offset=offset,
                total=total,
                sha256=sha256,
                mode=mode,
                progress=progress,
            )
        )

    def download(self, offset: int, length: int, sink: BinaryIO, on_block: OnBlock) -> None:
        self._run(lambda files: files.download(self.token, offset, length, sink, on_block))

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


def _resume_offset(state: UploadState, size: int) -> int:
    """Where to resume, given what the server holds (a complete file there is the one
    we are replacing: start over)."""
    if state.complete:
        return 0
    if state.committed_size and state.total_size != size:
        raise errors.FailedPrecondition(
            f"another upload of {state.total_size} bytes to this path is unfinished",
            reason="UPLOAD_OFFSET_MISMATCH",
        )
    return state.committed_size


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
    transport: Transport = "auto",
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
        transport,
    )
    offset: int | None = 0
    attempt = sent = 0

    def sending(done: int, total: int) -> None:
        nonlocal sent
        sent = done
        if progress is not None:
            progress(done, total)

    try:
        while True:
            attempt += 1
            if offset is None:
                try:
                    state = session.upload_offset()
                except errors.BaiError as exc:
                    retry_wait(session, retry, exc, attempt)
                    continue
                session.progressed()  # the server took the token
                if state.complete and sent == size:  # ours: the last try's reply was lost
                    return UploadResult(path, size, digest, attempt)
                offset = _resume_offset(state, size)
            sent = offset
            try:
                state = session.upload(source, offset, size, digest, mode, sending)
                if state.complete:
                    return UploadResult(path, size, state.sha256 or digest, attempt)
                err: errors.BaiError = errors.Unavailable(
                    f"upload ended at {state.committed_size} of {size} bytes", reason="UNAVAILABLE"
                )
            except errors.BaiError as exc:
                err = exc
            retry_wait(session, retry, err, attempt)
            committed = err.metadata.get("committed_size", "")
            # The same offset refused again means another size: the upload offset says so.
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
    transport: Transport = "auto",
) -> DownloadResult:
    """Write the folder's file ``path`` (or ``length`` bytes from ``offset``; 0: to the
    end) to ``sink``; a broken stream is resumed where it broke. Returns the bytes
    written. A stream that keeps ending short of the file raises
    :class:`errors.Unavailable` once the retries are spent; what arrived is in ``sink``."""
    issue = download_token(client, vfolder_id, path, False, ttl)
    session = TransferSession(client, issue, file_service_address, transport)
    received, expected, attempt = 0, length or None, 0

    def on_block(at: int, size: int, total: int) -> None:
        nonlocal received, expected
        if at != offset + received:
            raise errors.Internal(
                f"{path}: chunk at {at}, expected {offset + received}",
                code=grpc.StatusCode.DATA_LOSS,
            )
        if expected is None and total:
            expected = total - offset
        received += size
        session.progressed()
        if progress is not None:
            progress(received, expected or 0)

    try:
        while True:
            attempt += 1
            left = length - received if length else 0
            try:
                session.download(offset + received, left, sink, on_block)
                if expected is None or received == expected:
                    return DownloadResult(path, received, attempt)
                err: errors.BaiError = errors.Unavailable(
                    f"{path}: stream ended at {received} of {expected} bytes", reason="UNAVAILABLE"
                )
            except errors.BaiError as exc:
                err = exc
            retry_wait(session, retry, err, attempt)
    finally:
        session.close()
