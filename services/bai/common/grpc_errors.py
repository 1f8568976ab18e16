"""The one table that turns `bai.common.errors` into gRPC statuses.

Every failure leaves a service as google.rpc.Status with an ErrorInfo
(domain "bai") and, for bad input, a BadRequest. Anything that is not a
BaiError is a bug: it is logged with a correlation id and answered as
INTERNAL without a traceback.
"""

from __future__ import annotations

import logging
import uuid

import grpc
from google.protobuf import any_pb2
from google.rpc import error_details_pb2, status_pb2
from grpc_status import rpc_status

from bai.common import errors

log = logging.getLogger(__name__)

ERROR_DOMAIN = "bai"

STATUS_OF: dict[type[errors.BaiError], grpc.StatusCode] = {
    errors.InvalidArgument: grpc.StatusCode.INVALID_ARGUMENT,
    errors.Unauthenticated: grpc.StatusCode.UNAUTHENTICATED,
    errors.PermissionDenied: grpc.StatusCode.PERMISSION_DENIED,
    errors.NotFound: grpc.StatusCode.NOT_FOUND,
    errors.AlreadyExists: grpc.StatusCode.ALREADY_EXISTS,
    errors.FailedPrecondition: grpc.StatusCode.FAILED_PRECONDITION,
    errors.Aborted: grpc.StatusCode.ABORTED,
    errors.ResourceExhausted: grpc.StatusCode.RESOURCE_EXHAUSTED,
    errors.Unavailable: grpc.StatusCode.UNAVAILABLE,
    errors.Unimplemented: grpc.StatusCode.UNIMPLEMENTED,
}


def status_code_of(exc: errors.BaiError) -> grpc.StatusCode:
    for cls in type(exc).__mro__:
        if cls in STATUS_OF:
            return STATUS_OF[cls]
    return grpc.StatusCode.INTERNAL


def _pack(message: object) -> any_pb2.Any:
    packed = any_pb2.Any()
    packed.Pack(message)  # type: ignore[arg-type]
    return packed


def to_rpc_status(exc: BaseException) -> tuple[grpc.StatusCode, status_pb2.Status]:
    """Build the google.rpc.Status for an exception raised by a handler."""
    if isinstance(exc, errors.BaiError):
        code = status_code_of(exc)
        message, reason, metadata = exc.message, exc.reason, exc.metadata
    else:
        correlation = uuid.uuid4().hex[:12]
        log.error("unexpected error (correlation id %s)", correlation, exc_info=exc)
        code = grpc.StatusCode.INTERNAL
        message = f"internal error (correlation id {correlation})"
        reason, metadata = "INTERNAL", {"correlation_id": correlation}
    details = [
        _pack(error_details_pb2.ErrorInfo(reason=reason, domain=ERROR_DOMAIN, metadata=metadata))
    ]
    if isinstance(exc, errors.InvalidArgument) and exc.violations:
        bad = error_details_pb2.BadRequest(
            field_violations=[
                error_details_pb2.BadRequest.FieldViolation(
                    field=v.field, description=v.description
                )
                for v in exc.violations
            ]
        )
        details.append(_pack(bad))
    status = status_pb2.Status(code=code.value[0], message=message, details=details)
    return code, status


def to_grpc_status(exc: BaseException) -> grpc.Status:
    _, status = to_rpc_status(exc)
    return rpc_status.to_status(status)  # type: ignore[no-any-return]


async def abort_with(context: grpc.aio.ServicerContext[object, object], exc: BaseException) -> None:
    """Abort the call with the status for `exc` (never returns)."""
    await context.abort_with_status(to_grpc_status(exc))


__all__ = ["ERROR_DOMAIN", "abort_with", "status_code_of", "to_grpc_status", "to_rpc_status"]
