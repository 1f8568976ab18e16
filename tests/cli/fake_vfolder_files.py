"""A fake storage proxy FileService for SDK and CLI tests: a real grpc server whose
folders are real directories under a temporary root.

It follows proto/bai/api/storage/v1/file.proto: tokens (issued by the fake
VFolderService into ``Storage.tokens``) name one folder, path and operation and
expire; an upload at offset 0 starts anew (as bai.storage does), a resumed one
must repeat the size and sha256 and start at the committed size; bytes go to a
partial file that survives broken streams, are checked against their sha256 and
only then renamed into place; one upload per file at a time; downloads take
ranges; a directory downloads as one zip stream.

Faults for tests: ``break_upload_at``/``break_download_at`` (bytes) make the
next stream fail with UNAVAILABLE once it has passed that many bytes; with
``pause_upload_at``, the upload stops there and waits until ``resume`` is set
(so that a test can stop and restart the whole server meanwhile).
"""

from __future__ import annotations

import hashlib
import io
import os
import posixpath
import threading
import time
import zipfile
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import grpc

from bai.api.storage.v1 import file_pb2, file_pb2_grpc
from tests.client.fakes import Abort, Fake, fail

MiB = 1 << 20
UPLOAD, DOWNLOAD, ARCHIVE = "upload", "download", "archive-download"


@dataclass
class Token:
    folder_id: str
    path: str
    op: str
    expires: float
    max_size: int = 0


@dataclass
class Partial:
    total_size: int
    committed: int
    file: Path
    sha256: str


@dataclass
class Storage:
    """State of the fake storage proxy, shared with the fake VFolderService."""

    root: Path
    fake: Fake = field(default_factory=Fake)
    tokens: dict[str, Token] = field(default_factory=dict)
    partials: dict[tuple[str, str], Partial] = field(default_factory=dict)
    uploading: set[tuple[str, str]] = field(default_factory=set)
    lock: threading.Lock = field(default_factory=threading.Lock)
    upload_chunk_sizes: list[int] = field(default_factory=list)
    break_upload_at: int | None = None
    break_download_at: int | None = None
    pause_upload_at: int | None = None
    paused: threading.Event = field(default_factory=threading.Event)
    resume: threading.Event = field(default_factory=threading.Event)
    quota_bytes: int = 0

    def folder(self, folder_id: str) -> Path:
        return self.root / "folders" / folder_id

    def file(self, folder_id: str, path: str) -> Path:
        return self.folder(folder_id).joinpath(*[p for p in path.split("/") if p])

    def issue(self, folder_id: str, path: str, op: str, ttl: float = 3600.0) -> str:
        token = f"tok-{os.urandom(8).hex()}"
        self.tokens[token] = Token(folder_id, path, op, time.time() + ttl)
        return token

    def expire_tokens(self) -> None:
        for token in self.tokens.values():
            token.expires = 0.0

    def check(self, token: str, path: str, ops: tuple[str, ...]) -> tuple[Token, str]:
        """The token's scope and the path it gives access to; the contract's errors."""
        scope = self.tokens.get(token)
        if scope is None or scope.expires < time.time():
            raise fail(grpc.StatusCode.UNAUTHENTICATED, "token invalid", "TRANSFER_TOKEN_INVALID")
        if scope.op not in ops:
            raise fail(grpc.StatusCode.PERMISSION_DENIED, "wrong op", "TRANSFER_SCOPE_VIOLATION")
        full = posixpath.normpath(posixpath.join(scope.path, path)) if path else scope.path
        if full.startswith(".."):
            raise fail(grpc.StatusCode.PERMISSION_DENIED, "outside", "TRANSFER_SCOPE_VIOLATION")
        return scope, full


def _token(request_token: str, context: grpc.ServicerContext) -> str:
    if request_token:
        return request_token
    md = dict(context.invocation_metadata())
    value = md.get("authorization", "")
    return str(value).removeprefix("Bearer ")


class FakeFileService(file_pb2_grpc.FileServiceServicer):
    SERVICE = "bai.api.storage.v1.FileService"

    def __init__(self, storage: Storage) -> None:
        self.storage = storage

    def _enter(self, context: grpc.ServicerContext, request: Any, name: str) -> None:
        self.storage.fake.enter(context, request, f"/{self.SERVICE}/{name}", auth=False)

    def Upload(self, requests: Iterator[Any], context: grpc.ServicerContext) -> Any:
        try:
            return self._upload(requests, context)
        except Abort as exc:
            context.abort_with_status(exc.status)

    def _upload(self, requests: Iterator[Any], context: grpc.ServicerContext) -> Any:
        st = self.storage
        first = next(requests)
        self._enter(context, first, "Upload")
        if first.WhichOneof("payload") != "header":
            raise fail(grpc.StatusCode.FAILED_PRECONDITION, "header first", "STREAM_OUT_OF_ORDER")
        header = first.header
        scope, path = st.check(_token(header.token, context), header.path, (UPLOAD,))
        if st.quota_bytes and header.total_size > st.quota_bytes:
            raise fail(
                grpc.StatusCode.RESOURCE_EXHAUSTED, "quota exceeded", "STORAGE_QUOTA_EXCEEDED"
            )
        key = (scope.folder_id, path)
        with st.lock:
            if key in st.uploading:
                raise fail(grpc.StatusCode.ABORTED, "upload running", "CONCURRENT_UPDATE")
            st.uploading.add(key)
        try:
            return self._receive(key, header, requests, context)
        finally:
            with st.lock:
                st.uploading.discard(key)

    def _receive(
        self,
        key: tuple[str, str],
        header: file_pb2.UploadHeader,
        requests: Iterator[Any],
        context: grpc.ServicerContext,
    ) -> Any:
        st = self.storage
        partial = st.partials.get(key)
        if header.offset == 0:  # a new upload replaces an unfinished one
            if partial is not None:
                partial.file.unlink(missing_ok=True)
            spool = st.root / "partials" / os.urandom(8).hex()
            spool.parent.mkdir(parents=True, exist_ok=True)
            spool.touch()
            partial = st.partials[key] = Partial(header.total_size, 0, spool, header.sha256)
        same = partial is not None and (partial.total_size, partial.sha256) == (
            header.total_size,
            header.sha256,
        )
        committed = partial.committed if partial is not None and same else 0
        if partial is None or not same or header.offset != committed:
            raise fail(
                grpc.StatusCode.FAILED_PRECONDITION,
                f"committed {committed}",
                "UPLOAD_OFFSET_MISMATCH",
                metadata={"committed_size": str(committed)},
            )
        with partial.file.open("ab") as out:
            for request in requests:
                if request.WhichOneof("payload") != "chunk":
                    raise fail(
                        grpc.StatusCode.FAILED_PRECONDITION, "2nd header", "STREAM_OUT_OF_ORDER"
                    )
                st.upload_chunk_sizes.append(len(request.chunk))
                out.write(request.chunk)
                out.flush()
                partial.committed += len(request.chunk)
                self._upload_faults(partial.committed, context)
        if partial.committed < partial.total_size:
            return file_pb2.UploadResponse(committed_size=partial.committed)
        del st.partials[key]
        with partial.file.open("rb") as written:
            digest = hashlib.file_digest(written, "sha256").hexdigest()
        if header.sha256 and header.sha256 != digest:
            partial.file.unlink()
            raise fail(grpc.StatusCode.DATA_LOSS, "checksum mismatch", "CHECKSUM_MISMATCH")
        target = st.file(*key)
        target.parent.mkdir(parents=True, exist_ok=True)
        os.replace(partial.file, target)
        return file_pb2.UploadResponse(
            committed_size=partial.total_size, complete=True, sha256=digest
        )

    def _upload_faults(self, committed: int, context: grpc.ServicerContext) -> None:
        st = self.storage
        if st.break_upload_at is not None and committed >= st.break_upload_at:
            st.break_upload_at = None
            context.abort(grpc.StatusCode.UNAVAILABLE, "connection reset by peer")
        if st.pause_upload_at is not None and committed >= st.pause_upload_at:
            st.pause_upload_at = None
            st.paused.set()
            st.resume.wait(30)
            if not context.is_active():
                raise fail(grpc.StatusCode.CANCELLED, "the server went away")

    def GetUploadOffset(self, request: Any, context: grpc.ServicerContext) -> Any:
        try:
            self._enter(context, request, "GetUploadOffset")
            scope, path = self.storage.check(
                _token(request.token, context), request.path, (UPLOAD,)
            )
        except Abort as exc:
            context.abort_with_status(exc.status)
        partial = self.storage.partials.get((scope.folder_id, path))
        if partial is not None:
            return file_pb2.GetUploadOffsetResponse(
                committed_size=partial.committed, total_size=partial.total_size
            )
        complete = self.storage.file(scope.folder_id, path).is_file()
        return file_pb2.GetUploadOffsetResponse(complete=complete)

    def Download(self, request: Any, context: grpc.ServicerContext) -> Iterator[Any]:
        try:
            self._enter(context, request, "Download")
            token = _token(request.token, context)
            scope, path = self.storage.check(token, request.path, (DOWNLOAD, ARCHIVE))
            target = self.storage.file(scope.folder_id, path)
            if scope.op == ARCHIVE:
                yield from self._archive(target, request, context)
                return
            if not target.exists():
                raise fail(grpc.StatusCode.NOT_FOUND, f"{path} does not exist")
            if not target.is_file():
                raise fail(
                    grpc.StatusCode.FAILED_PRECONDITION,
                    f"{path} is a directory",
                    "PATH_TYPE_MISMATCH",
                )
            size = target.stat().st_size
            if request.offset > size or request.offset + request.length > size:
                raise fail(
                    grpc.StatusCode.INVALID_ARGUMENT, "range beyond the end", "INVALID_FIELD"
                )
            end = request.offset + request.length if request.length else size
            yield from self._chunks(target, request.offset, end, size, context)
        except Abort as exc:
            context.abort_with_status(exc.status)

    def _chunks(
        self, target: Path, start: int, end: int, size: int, context: grpc.ServicerContext
    ) -> Iterator[file_pb2.DownloadResponse]:
        with target.open("rb") as source:
            source.seek(start)
            position = start
            while position < end:
                data = source.read(min(MiB, end - position))
                total = size if position == start else 0
                yield file_pb2.DownloadResponse(chunk=data, offset=position, total_size=total)
                position += len(data)
                self._download_faults(position, context)

    def _download_faults(self, position: int, context: grpc.ServicerContext) -> None:
        st = self.storage
        if st.break_download_at is not None and position >= st.break_download_at:
            st.break_download_at = None
            context.abort(grpc.StatusCode.UNAVAILABLE, "connection reset by peer")

    def _archive(
        self, directory: Path, request: Any, context: grpc.ServicerContext
    ) -> Iterator[file_pb2.DownloadResponse]:
        if request.offset or request.length:
            raise fail(grpc.StatusCode.INVALID_ARGUMENT, "no ranges on archives", "INVALID_FIELD")
        if not directory.is_dir():
            raise fail(grpc.StatusCode.FAILED_PRECONDITION, "not a dir", "PATH_TYPE_MISMATCH")
        buffer = io.BytesIO()
        with zipfile.ZipFile(buffer, "w") as bundle:
            for item in sorted(directory.rglob("*")):
                name = item.relative_to(directory).as_posix()
                if item.is_dir():
                    bundle.writestr(name + "/", b"")
                else:
                    bundle.write(item, name)
        data = buffer.getvalue()
        for start in range(0, len(data), MiB):
            yield file_pb2.DownloadResponse(chunk=data[start : start + MiB], offset=start)
            self._download_faults(start + MiB, context)


class FileServer:
    """The fake FileService on a port of its own; ``stop``/``start`` keep port and state."""

    def __init__(self, storage: Storage) -> None:
        self.storage = storage
        self.port = 0
        self._server: grpc.Server | None = None

    @property
    def address(self) -> str:
        return f"127.0.0.1:{self.port}"

    def start(self) -> None:
        server = grpc.server(ThreadPoolExecutor(max_workers=8))
        servicer = FakeFileService(self.storage)  # type: ignore[abstract]  # no ListDirectory
        file_pb2_grpc.add_FileServiceServicer_to_server(servicer, server)
        self.port = server.add_insecure_port(f"127.0.0.1:{self.port}")
        server.start()
        self._server = server

    def stop(self) -> None:
        """Stop at once (like a killed proxy); a paused upload is let go first so that
        its handler sees its call cancelled."""
        if self._server is not None:
            stopped = self._server.stop(None)
            self.storage.resume.set()
            stopped.wait()
            self._server = None
