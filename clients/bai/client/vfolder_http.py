"""Vfolder file bytes over the storage proxy's plain-HTTP transfer endpoints.

The same token-scoped transfers as ``FileService``, under ``/storage/v1/`` at the
Envoy gateway (contract: the docstring of services/bai/storage/http/handlers.py):
``GET download`` (a file, ``Range`` for part of it; a zip stream for an archive
token), ``PUT upload`` (the bytes from ``Upload-Offset`` of an ``Upload-Length``
byte file, checked against ``X-Bai-Sha256``), ``HEAD upload`` (what is committed).

Plain HTTP/1.1 from the stdlib, without protobuf framing per chunk: several times
faster than FileService through Envoy. Blocks are 1 MiB, read from the file into
one preallocated buffer (uploads) or from the socket into one (downloads), so
``sink.write`` receives a view of a reused buffer and must copy it (files and
BytesIO do). Error replies (JSON code, reason, message, metadata, violations)
become the same :mod:`bai.client.errors` as over gRPC.

:class:`HttpFiles` makes one request per call; resume, retries and token renewal
are bai.client.vfolder_transfers'. Until the endpoint has answered once, a
failure that says there is none at the address (a refused connection, a reply
that is not HTTP/1.1, or one without the endpoint's headers or JSON errors)
raises :class:`NotTransferEndpoint`, so that a transfer may go on over gRPC.
"""

from __future__ import annotations

import http.client
import json
import os
import re
import ssl
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any, BinaryIO, Protocol

import grpc
from google.rpc import (  # type: ignore[import-untyped, unused-ignore]
    error_details_pb2,
    status_pb2,
)

from bai.client import errors
from bai.client._client import parse_address

CHUNK_SIZE = 1 << 20
TIMEOUT = 120.0
"""Seconds one socket operation may wait (connect, send a block, receive one)."""
PREFIX = "/storage/v1"
ERROR_DOMAIN = "bai"
MAX_ERROR_BODY = 1 << 16

Progress = Callable[[int, int], None]
OnBlock = Callable[[int, int, int], None]
"""Called with (offset, size, file size or 0 while unknown) after each block reaches the sink."""

_CONTENT_RANGE = re.compile(r"bytes (\d+)-(\d+)/(\d+)")
_UNSATISFIED_RANGE = re.compile(r"bytes \*/(\d+)")
_FILE_TYPES = ("application/octet-stream", "application/zip")
_CODE_OF_STATUS = {
    400: grpc.StatusCode.INVALID_ARGUMENT,
    401: grpc.StatusCode.UNAUTHENTICATED,
    403: grpc.StatusCode.PERMISSION_DENIED,
    404: grpc.StatusCode.NOT_FOUND,
    409: grpc.StatusCode.ABORTED,
    429: grpc.StatusCode.RESOURCE_EXHAUSTED,
    501: grpc.StatusCode.UNIMPLEMENTED,
    502: grpc.StatusCode.UNAVAILABLE,
    503: grpc.StatusCode.UNAVAILABLE,
    504: grpc.StatusCode.UNAVAILABLE,
}


@dataclass(frozen=True)
class UploadState:
    committed_size: int
    total_size: int
    complete: bool
    sha256: str = ""


class FileTransport(Protocol):
    """One request each; what HttpFiles and the FileService wrapper both offer."""

    def upload_offset(self, token: str) -> UploadState: ...

    def upload(
        self,
        token: str,
        source: str | os.PathLike[str],
        *,
        offset: int,
        total: int,
        sha256: str,
        mode: int,
        progress: Progress,
    ) -> UploadState: ...

    def download(
        self, token: str, offset: int, length: int, sink: BinaryIO, on_block: OnBlock
    ) -> None: ...


class NotTransferEndpoint(Exception):
    """No HTTP transfer endpoint answered at the address; ``error`` is what that means
    to a transfer that must use HTTP."""

    def __init__(self, error: errors.BaiError) -> None:
        super().__init__(str(error))
        self.error = error


def error_from_body(body: Mapping[str, Any]) -> errors.BaiError | None:
    """The typed error for the endpoint's JSON error body; None when it is not one."""
    code_name, reason = body.get("code"), body.get("reason")
    if not isinstance(reason, str) or code_name not in grpc.StatusCode.__members__:
        return None
    code = grpc.StatusCode[str(code_name)]
    message = str(body.get("message", ""))
    metadata = {str(k): str(v) for k, v in (body.get("metadata") or {}).items()}
    status = status_pb2.Status(code=code.value[0], message=message)
    info = error_details_pb2.ErrorInfo(reason=reason, domain=ERROR_DOMAIN, metadata=metadata)
    status.details.add().Pack(info)
    violations = body.get("violations") or []
    if violations:
        bad = error_details_pb2.BadRequest()
        for v in violations:
            bad.field_violations.add(
                field=str(v.get("field")), description=str(v.get("description"))
            )
        status.details.add().Pack(bad)
    return errors.from_status(code, message, status)


def _status_error(status: int, text: str) -> errors.BaiError:
    """A reply that did not come from the endpoint (a proxy's own answer)."""
    if status in (404, 405, 501):
        return errors.Unimplemented(f"no HTTP transfer endpoint here ({text})")
    code = _CODE_OF_STATUS.get(status, grpc.StatusCode.INTERNAL)
    return errors.ERROR_CLASSES[code](text, code=code)


class HttpFiles:
    """Requests to the transfer endpoints at ``address`` (``host:port``, ``http://``
    or ``https://`` URL of the gateway)."""

    def __init__(self, address: str, timeout: float = TIMEOUT) -> None:
        self.address = address
        self.timeout = timeout
        self._target, tls = parse_address(address)
        self._tls = ssl.create_default_context() if tls else None
        self.confirmed = False
        """Whether the endpoint has answered; after that, nothing raises NotTransferEndpoint."""

    def upload_offset(self, token: str) -> UploadState:
        conn = self._connect()
        try:
            self._request(conn, "HEAD", "upload", token, {})
            response = self._response(conn, "HEAD upload")
            if response.status != 200:
                raise self._failure(response, "HEAD upload")
            try:
                state = UploadState(
                    int(response.headers["upload-offset"]),
                    int(response.headers["upload-length"]),
                    response.headers["x-bai-upload-complete"] == "true",
                )
            except (KeyError, TypeError, ValueError):
                raise self._failure(response, "HEAD upload", ours=False) from None
            self.confirmed = True
            return state
        finally:
            conn.close()

    def upload(
        self,
        token: str,
        source: str | os.PathLike[str],
        *,
        offset: int,
        total: int,
        sha256: str,
        mode: int,
        progress: Progress,
    ) -> UploadState:
        """PUT the file from ``offset``. A first contact asks HEAD first, so that a
        missing endpoint or a refused token costs no body."""
        if not self.confirmed:
            self.upload_offset(token)
        headers = {
            "Content-Type": "application/octet-stream",
            "Content-Length": str(total - offset),
            "Upload-Offset": str(offset),
            "Upload-Length": str(total),
        }
        if sha256:
            headers["X-Bai-Sha256"] = sha256
        if mode:
            headers["X-Bai-Mode"] = format(mode, "o")
        conn = self._connect()
        try:
            self._request(conn, "PUT", "upload", token, headers)
            broken = _send_file(conn, source, offset, total, progress)
            try:
                response = conn.getresponse()  # an early error reply may be there even if broken
            except (OSError, http.client.HTTPException) as exc:
                raise self._broken("PUT upload", broken or exc) from exc
            if response.status != 200:
                raise self._failure(response, "PUT upload")
            try:
                reply = json.loads(response.read())
                return UploadState(
                    int(reply["committed_size"]),
                    int(reply["total_size"]),
                    bool(reply["complete"]),
                    str(reply.get("sha256", "")),
                )
            except (OSError, http.client.HTTPException) as exc:
                raise self._broken("PUT upload", exc) from exc
            except (KeyError, TypeError, ValueError):
                raise self._failure(response, "PUT upload", ours=False) from None
        finally:
            conn.close()

    def download(
        self, token: str, offset: int, length: int, sink: BinaryIO, on_block: OnBlock
    ) -> None:
        """GET ``length`` bytes (0: the rest) from ``offset`` into ``sink``."""
        headers = {}
        if offset or length:
            headers["Range"] = f"bytes={offset}-{offset + length - 1 if length else ''}"
        conn = self._connect()
        try:
            self._request(conn, "GET", "download", token, headers)
            response = self._response(conn, "GET download")
            if response.status == 416:
                self._unsatisfiable(response, offset, length, on_block)
                return
            if response.status not in (200, 206) or _media_type(response) not in _FILE_TYPES:
                raise self._failure(response, "GET download", ours=response.status >= 300)
            self.confirmed = True
            start, total = _span(response, offset, length)
            self._copy(response, start, total, sink, on_block)
        finally:
            conn.close()

    def _connect(self) -> http.client.HTTPConnection:
        if self._tls is None:
            return http.client.HTTPConnection(self._target, timeout=self.timeout)
        return http.client.HTTPSConnection(self._target, timeout=self.timeout, context=self._tls)

    def _request(
        self,
        conn: http.client.HTTPConnection,
        method: str,
        op: str,
        token: str,
        headers: Mapping[str, str],
    ) -> None:
        try:
            conn.putrequest(method, f"{PREFIX}/{op}", skip_accept_encoding=True)
            conn.putheader("Authorization", f"Bearer {token}")
            for name, value in headers.items():
                conn.putheader(name, value)
            conn.endheaders()
        except (OSError, http.client.HTTPException) as exc:
            raise self._broken(f"{method} {op}", exc) from exc

    def _response(self, conn: http.client.HTTPConnection, what: str) -> http.client.HTTPResponse:
        try:
            return conn.getresponse()
        except (OSError, http.client.HTTPException) as exc:
            raise self._broken(what, exc) from exc

    def _copy(
        self,
        response: http.client.HTTPResponse,
        start: int,
        total: int,
        sink: BinaryIO,
        on_block: OnBlock,
    ) -> None:
        view = memoryview(bytearray(CHUNK_SIZE))
        position = start
        while True:
            try:
                size = response.readinto(view)
            except (OSError, http.client.HTTPException) as exc:
                raise self._broken("GET download", exc) from exc
            if not size:
                return
            sink.write(view[:size])
            on_block(position, size, total)
            position += size

    def _unsatisfiable(
        self, response: http.client.HTTPResponse, offset: int, length: int, on_block: OnBlock
    ) -> None:
        """416: a range from the end of the file is empty (as over gRPC), else too far."""
        found = _UNSATISFIED_RANGE.fullmatch(response.headers.get("content-range") or "")
        if found is None:
            raise self._failure(response, "GET download", ours=False)
        self.confirmed = True
        size = int(found[1])
        if offset == size and not length:
            on_block(offset, 0, size)
            return
        raise _beyond_end("offset" if offset > size else "length", size)

    def _broken(self, what: str, exc: BaseException) -> Exception:
        """The exception for a connection that failed or did not speak HTTP/1.1."""
        text = f"{what} at {self.address}: {type(exc).__name__}: {exc}"
        err: errors.BaiError
        if isinstance(exc, http.client.BadStatusLine) and not isinstance(exc, ConnectionError):
            err = errors.Unimplemented(f"no HTTP/1.1 transfer endpoint ({text})")
        else:
            err = errors.Unavailable(text)
        return err if self.confirmed else NotTransferEndpoint(err)

    def _failure(
        self, response: http.client.HTTPResponse, what: str, *, ours: bool = True
    ) -> Exception:
        """The exception for an error reply: the endpoint's own, or a proxy's."""
        try:
            body = response.read(MAX_ERROR_BODY)
        except (OSError, http.client.HTTPException):
            body = b""
        if ours and _media_type(response) == "application/json":
            err = _endpoint_error(response, body)
            if err is not None:
                self.confirmed = True
                return err
        text = f"{what} at {self.address}: HTTP {response.status} {response.reason}"
        snippet = body[:200].decode("utf-8", "replace").strip()
        err = _status_error(response.status, f"{text}: {snippet}" if snippet else text)
        return err if self.confirmed else NotTransferEndpoint(err)


def _media_type(response: http.client.HTTPResponse) -> str:
    return (response.headers.get("content-type") or "").split(";")[0].strip()


def _endpoint_error(response: http.client.HTTPResponse, body: bytes) -> errors.BaiError | None:
    if not body:  # a HEAD reply: the headers carry the code and reason
        code_name = response.headers.get("x-bai-error-code", "")
        reason = response.headers.get("x-bai-error-reason")
        if code_name not in grpc.StatusCode.__members__ or not reason:
            return None
        code = grpc.StatusCode[code_name]
        return errors.ERROR_CLASSES[code](f"HTTP {response.status}", code=code, reason=reason)
    try:
        parsed = json.loads(body)
    except ValueError:
        return None
    return error_from_body(parsed) if isinstance(parsed, dict) else None


def _span(response: http.client.HTTPResponse, offset: int, length: int) -> tuple[int, int]:
    """(first offset, file size or 0) of a 200/206 reply; a file shorter than the
    asked range is refused as over gRPC."""
    if response.status == 200:
        size = int(response.headers.get("content-length") or 0)
        return 0, size
    found = _CONTENT_RANGE.fullmatch(response.headers.get("content-range") or "")
    if found is None:
        raise errors.Internal(
            f"206 without a byte range: {response.headers.get('content-range')!r}",
            code=grpc.StatusCode.DATA_LOSS,
        )
    start, last, size = (int(g) for g in found.groups())
    if length and last + 1 < offset + length:
        raise _beyond_end("length", size)
    return start, size


def _beyond_end(field: str, size: int) -> errors.InvalidArgument:
    """As FileService refuses a range past the end of the file."""
    why = f"goes beyond the end ({size} bytes)"
    return errors.InvalidArgument(
        f"{field} {why}", field_violations=[errors.FieldViolation(field, why)]
    )


def _send_file(
    conn: http.client.HTTPConnection,
    source: str | os.PathLike[str],
    offset: int,
    total: int,
    progress: Progress,
) -> OSError | None:
    """Send bytes [offset, total) of ``source``; returns the socket error that broke
    the connection (an early error reply may still be readable), raises OSError for
    the file."""
    view = memoryview(bytearray(min(CHUNK_SIZE, max(total - offset, 1))))
    position = offset
    with open(source, "rb") as stream:
        stream.seek(offset)
        while position < total:
            size = stream.readinto(view[: min(len(view), total - position)])
            if not size:
                raise OSError(f"{os.fspath(source)} ended at {position} of {total} bytes")
            try:
                conn.send(view[:size])
            except OSError as exc:
                return exc
            position += size
            progress(position, total)
    return None
