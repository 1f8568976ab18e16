"""Failures of HTTP transfers: the gRPC status the same failure has, as HTTP.

The mapping is google.rpc's (the one Envoy's JSON transcoder uses for the
REST API), so a caller sees the same code names and reasons over gRPC, REST
and these endpoints. The body is JSON: code, reason, message, metadata and
any field violations; the code and reason also go in the X-Bai-Error-Code and
X-Bai-Error-Reason headers, for HEAD replies (which have no body).
"""

from __future__ import annotations

import json
import logging
import uuid

import grpc
from aiohttp import web

from bai.common.errors import BaiError, InvalidArgument
from bai.common.grpc_errors import status_code_of
from bai.storage.transfers.upload import ChecksumMismatch

log = logging.getLogger("bai.storage.http")

HTTP_STATUS: dict[grpc.StatusCode, int] = {
    grpc.StatusCode.INVALID_ARGUMENT: 400,
    grpc.StatusCode.FAILED_PRECONDITION: 400,
    grpc.StatusCode.OUT_OF_RANGE: 400,
    grpc.StatusCode.UNAUTHENTICATED: 401,
    grpc.StatusCode.PERMISSION_DENIED: 403,
    grpc.StatusCode.NOT_FOUND: 404,
    grpc.StatusCode.ALREADY_EXISTS: 409,
    grpc.StatusCode.ABORTED: 409,
    grpc.StatusCode.RESOURCE_EXHAUSTED: 429,
    grpc.StatusCode.UNIMPLEMENTED: 501,
    grpc.StatusCode.UNAVAILABLE: 503,
    grpc.StatusCode.DATA_LOSS: 500,
}


def code_of(exc: BaiError) -> grpc.StatusCode:
    # Not in the shared error tree (it has no DATA_LOSS class); the contract names it.
    if isinstance(exc, ChecksumMismatch):
        return grpc.StatusCode.DATA_LOSS
    return status_code_of(exc)


def error_response(exc: BaseException) -> web.Response:
    if isinstance(exc, BaiError):
        code = code_of(exc)
        body: dict[str, object] = {
            "code": code.name,
            "reason": exc.reason,
            "message": exc.message,
            "metadata": exc.metadata,
        }
        if isinstance(exc, InvalidArgument) and exc.violations:
            body["violations"] = [
                {"field": v.field, "description": v.description} for v in exc.violations
            ]
        status = HTTP_STATUS.get(code, 500)
    else:
        correlation = uuid.uuid4().hex[:12]
        log.error("unexpected error (correlation id %s)", correlation, exc_info=exc)
        body = {
            "code": "INTERNAL",
            "reason": "INTERNAL",
            "message": f"internal error (correlation id {correlation})",
            "metadata": {"correlation_id": correlation},
        }
        status = 500
    headers = {"x-bai-error-code": str(body["code"]), "x-bai-error-reason": str(body["reason"])}
    return web.Response(
        status=status, text=json.dumps(body), content_type="application/json", headers=headers
    )
