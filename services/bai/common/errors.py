"""The exception tree every bai component raises from domain code.

Domain code raises these and knows nothing about gRPC; each service edge maps
them to a status code with one table (`bai.common.grpc_errors`). The `reason`
of each error is a name from `bai.api.common.v1.ErrorReason` without its
prefix; clients match on it.

    BaiError
    ├── InvalidArgument      (INVALID_ARGUMENT; carries field violations)
    ├── Unauthenticated      (UNAUTHENTICATED)
    ├── PermissionDenied     (PERMISSION_DENIED)
    ├── NotFound             (NOT_FOUND)
    ├── AlreadyExists        (ALREADY_EXISTS)
    ├── FailedPrecondition   (FAILED_PRECONDITION)
    ├── Aborted              (ABORTED)
    ├── ResourceExhausted    (RESOURCE_EXHAUSTED)
    ├── Unavailable          (UNAVAILABLE)
    └── Unimplemented        (UNIMPLEMENTED)
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass


@dataclass(frozen=True)
class FieldViolation:
    field: str
    description: str


class BaiError(Exception):
    """Base of all expected failures. `reason` is the machine-readable name."""

    default_reason = "INTERNAL"

    def __init__(
        self,
        message: str,
        *,
        reason: str | None = None,
        metadata: Mapping[str, str] | None = None,
    ) -> None:
        super().__init__(message)
        self.message = message
        self.reason = reason or self.default_reason
        self.metadata: dict[str, str] = dict(metadata or {})


class InvalidArgument(BaiError):
    default_reason = "INVALID_FIELD"

    def __init__(
        self,
        violations: list[FieldViolation],
        *,
        reason: str | None = None,
        message: str | None = None,
    ) -> None:
        text = message or "; ".join(f"{v.field}: {v.description}" for v in violations)
        super().__init__(text or "invalid request", reason=reason)
        self.violations = violations

    @classmethod
    def field(cls, field: str, description: str) -> InvalidArgument:
        return cls([FieldViolation(field, description)])


class Unauthenticated(BaiError):
    default_reason = "CREDENTIALS_MISSING"


class PermissionDenied(BaiError):
    default_reason = "ROLE_FORBIDDEN"


class NotFound(BaiError):
    default_reason = "NOT_FOUND"


class AlreadyExists(BaiError):
    default_reason = "ALREADY_EXISTS"


class FailedPrecondition(BaiError):
    default_reason = "INVALID_STATE"


class Aborted(BaiError):
    default_reason = "CONCURRENT_UPDATE"


class ResourceExhausted(BaiError):
    default_reason = "QUOTA_EXCEEDED"


class Unavailable(BaiError):
    default_reason = "DEPENDENCY_UNAVAILABLE"


class Unimplemented(BaiError):
    default_reason = "NOT_IMPLEMENTED"
