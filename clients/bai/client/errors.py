"""Exceptions raised by the bai SDK.

Every failed call raises a subclass of :class:`BaiError`, chosen by the gRPC
status code and filled from the ``google.rpc.Status`` the server attached:

    BaiError                  any failed call
    ├── InvalidArgument       INVALID_ARGUMENT: bad input; see .field_violations
    │   └── OutOfRange        OUT_OF_RANGE
    ├── Unauthenticated       UNAUTHENTICATED: missing, wrong or expired credentials
    ├── PermissionDenied      PERMISSION_DENIED: authenticated, but not allowed
    ├── NotFound              NOT_FOUND: missing, or not visible to the caller
    ├── AlreadyExists         ALREADY_EXISTS: a unique name is taken
    ├── FailedPrecondition    FAILED_PRECONDITION: wrong state (in use, invalid state)
    ├── Aborted               ABORTED: a concurrent update won; retry with fresh state
    ├── ResourceExhausted     RESOURCE_EXHAUSTED: quota or rate limit
    ├── Cancelled             CANCELLED
    ├── DeadlineExceeded      DEADLINE_EXCEEDED: the call's timeout passed
    ├── Unavailable           UNAVAILABLE: server or a dependency unreachable
    ├── Unimplemented         UNIMPLEMENTED
    └── Internal              INTERNAL, UNKNOWN, DATA_LOSS: a server bug

Attributes of every error:

* ``code``: the ``grpc.StatusCode``.
* ``message``: the server's human-readable text (do not match on it).
* ``reason``: the machine-readable ``ErrorInfo.reason`` such as ``"NOT_FOUND"``,
  ``"SIGNATURE_MISMATCH"`` or ``"IN_USE"`` (names of ``bai.api.common.v1.ErrorReason``
  without the prefix); the status code's name when the server sent no ErrorInfo.
* ``metadata``: ``ErrorInfo.metadata`` (for example a correlation id).
* ``field_violations``: ``BadRequest`` field violations, as :class:`FieldViolation`.

Match on the class for the broad case and on ``reason`` for the precise one::

    try:
        client.domains.delete_domain(name="research")
    except bai.client.errors.FailedPrecondition as exc:
        if exc.reason == "IN_USE":
            ...
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Protocol

import grpc
from google.protobuf.message import DecodeError
from google.rpc import (  # type: ignore[import-untyped, unused-ignore]
    error_details_pb2,
    status_pb2,
)

STATUS_DETAILS_KEY = "grpc-status-details-bin"


@dataclass(frozen=True)
class FieldViolation:
    """One invalid field of a request, from ``google.rpc.BadRequest``."""

    field: str
    description: str


class BaiError(Exception):
    """Base of every error the SDK raises for a failed call."""

    code: grpc.StatusCode = grpc.StatusCode.UNKNOWN

    def __init__(
        self,
        message: str,
        *,
        code: grpc.StatusCode | None = None,
        reason: str | None = None,
        domain: str = "",
        metadata: Mapping[str, str] | None = None,
        field_violations: Iterable[FieldViolation] = (),
        status: status_pb2.Status | None = None,
    ) -> None:
        super().__init__(message)
        if code is not None:
            self.code = code
        self.message = message
        self.reason = reason or self.code.name
        self.domain = domain
        self.metadata: dict[str, str] = dict(metadata or {})
        self.field_violations: list[FieldViolation] = list(field_violations)
        self.status = status

    def __str__(self) -> str:
        head = self.code.name
        if self.reason != self.code.name:
            head += f" ({self.reason})"
        text = f"{head}: {self.message}" if self.message else head
        # Violations the message does not already spell out.
        extra = [f"{v.field}: {v.description}" for v in self.field_violations]
        extra = [e for e in dict.fromkeys(extra) if e not in self.message]
        if extra:
            text += "; " + "; ".join(extra)
        return text


class InvalidArgument(BaiError):
    code = grpc.StatusCode.INVALID_ARGUMENT


class OutOfRange(InvalidArgument):
    code = grpc.StatusCode.OUT_OF_RANGE


class Unauthenticated(BaiError):
    code = grpc.StatusCode.UNAUTHENTICATED


class PermissionDenied(BaiError):
    code = grpc.StatusCode.PERMISSION_DENIED


class NotFound(BaiError):
    code = grpc.StatusCode.NOT_FOUND


class AlreadyExists(BaiError):
    code = grpc.StatusCode.ALREADY_EXISTS


class FailedPrecondition(BaiError):
    code = grpc.StatusCode.FAILED_PRECONDITION


class Aborted(BaiError):
    code = grpc.StatusCode.ABORTED


class ResourceExhausted(BaiError):
    code = grpc.StatusCode.RESOURCE_EXHAUSTED


class Cancelled(BaiError):
    code = grpc.StatusCode.CANCELLED


class DeadlineExceeded(BaiError):
    code = grpc.StatusCode.DEADLINE_EXCEEDED


class Unavailable(BaiError):
    code = grpc.StatusCode.UNAVAILABLE


class Unimplemented(BaiError):
    code = grpc.StatusCode.UNIMPLEMENTED


class Internal(BaiError):
    code = grpc.StatusCode.INTERNAL


ERROR_CLASSES: dict[grpc.StatusCode, type[BaiError]] = {
    grpc.StatusCode.INVALID_ARGUMENT: InvalidArgument,
    grpc.StatusCode.OUT_OF_RANGE: OutOfRange,
    grpc.StatusCode.UNAUTHENTICATED: Unauthenticated,
    grpc.StatusCode.PERMISSION_DENIED: PermissionDenied,
    grpc.StatusCode.NOT_FOUND: NotFound,
    grpc.StatusCode.ALREADY_EXISTS: AlreadyExists,
    grpc.StatusCode.FAILED_PRECONDITION: FailedPrecondition,
    grpc.StatusCode.ABORTED: Aborted,
    grpc.StatusCode.RESOURCE_EXHAUSTED: ResourceExhausted,
    grpc.StatusCode.CANCELLED: Cancelled,
    grpc.StatusCode.DEADLINE_EXCEEDED: DeadlineExceeded,
    grpc.StatusCode.UNAVAILABLE: Unavailable,
    grpc.StatusCode.UNIMPLEMENTED: Unimplemented,
    grpc.StatusCode.INTERNAL: Internal,
    grpc.StatusCode.UNKNOWN: Internal,
    grpc.StatusCode.DATA_LOSS: Internal,
}


class _FailedCall(Protocol):
    """What both grpc.Call (sync) and grpc.aio.AioRpcError offer."""

    def code(self) -> grpc.StatusCode: ...
    def details(self) -> str | None: ...
    def trailing_metadata(self) -> object: ...


def _status_details(trailing: object) -> status_pb2.Status | None:
    if not trailing:
        return None
    for item in trailing:  # type: ignore[attr-defined]
        key, value = item
        if key == STATUS_DETAILS_KEY and isinstance(value, bytes):
            status = status_pb2.Status()
            try:
                status.ParseFromString(value)
            except DecodeError:
                return None
            return status
    return None


def from_status(
    code: grpc.StatusCode, message: str, status: status_pb2.Status | None = None
) -> BaiError:
    """Build the typed error for a status code and optional google.rpc.Status."""
    reason: str | None = None
    domain = ""
    metadata: dict[str, str] = {}
    violations: list[FieldViolation] = []
    if status is not None:
        message = status.message or message
        for detail in status.details:
            info = error_details_pb2.ErrorInfo()
            bad = error_details_pb2.BadRequest()
            if detail.Is(info.DESCRIPTOR) and detail.Unpack(info):
                reason, domain, metadata = info.reason, info.domain, dict(info.metadata)
            elif detail.Is(bad.DESCRIPTOR) and detail.Unpack(bad):
                violations.extend(
                    FieldViolation(v.field, v.description) for v in bad.field_violations
                )
    cls = ERROR_CLASSES.get(code, BaiError)
    return cls(
        message,
        code=code,
        reason=reason,
        domain=domain,
        metadata=metadata,
        field_violations=violations,
        status=status,
    )


def from_rpc_error(exc: grpc.RpcError) -> BaiError:
    """Translate an exception raised by grpc (sync or aio) into a BaiError."""
    if isinstance(exc, grpc.Call | grpc.aio.AioRpcError):
        call: _FailedCall = exc
        code = call.code()
        return from_status(code, call.details() or "", _status_details(call.trailing_metadata()))
    return Internal(str(exc) or type(exc).__name__, code=grpc.StatusCode.UNKNOWN)


__all__ = [
    "ERROR_CLASSES",
    "Aborted",
    "AlreadyExists",
    "BaiError",
    "Cancelled",
    "DeadlineExceeded",
    "FailedPrecondition",
    "FieldViolation",
    "Internal",
    "InvalidArgument",
    "NotFound",
    "OutOfRange",
    "PermissionDenied",
    "ResourceExhausted",
    "Unauthenticated",
    "Unavailable",
    "Unimplemented",
    "from_rpc_error",
    "from_status",
]
