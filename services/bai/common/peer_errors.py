"""Failures of calls to another bai service, as bai errors.

A peer that cannot be reached (UNAVAILABLE, DEADLINE_EXCEEDED) becomes the
caller's Unavailable with its own reason (AGENT_UNAVAILABLE,
DEPENDENCY_UNAVAILABLE...); any other status keeps the peer's code and
ErrorInfo reason, so a client sees the same reason whichever hop refused.
"""

from __future__ import annotations

import grpc
from google.rpc import error_details_pb2, status_pb2

from bai.common import errors
from bai.common.grpc_errors import STATUS_OF

_CLASS_OF = {code: cls for cls, code in STATUS_OF.items()}
UNREACHABLE = (grpc.StatusCode.UNAVAILABLE, grpc.StatusCode.DEADLINE_EXCEEDED)


def peer_reason(exc: grpc.aio.AioRpcError) -> str:
    """The ErrorInfo reason in the peer's status details; "" when none."""
    for key, value in exc.trailing_metadata() or ():
        if key != "grpc-status-details-bin" or not isinstance(value, bytes):
            continue
        status = status_pb2.Status.FromString(value)
        for detail in status.details:
            info = error_details_pb2.ErrorInfo()
            if detail.Unpack(info):
                return str(info.reason)
    return ""


def error_from_peer(
    exc: grpc.aio.AioRpcError,
    *,
    unreachable_reason: str,
    peer: str,
    metadata: dict[str, str] | None = None,
) -> errors.BaiError:
    """`exc` from a call to `peer` (a name for messages) as a bai error."""
    reason = peer_reason(exc)
    detail = exc.details() or exc.code().name
    meta = dict(metadata or {})
    if exc.code() in UNREACHABLE:
        if reason:
            meta["peer_reason"] = reason
        return errors.Unavailable(
            f"{peer} is unavailable: {detail}", reason=unreachable_reason, metadata=meta
        )
    cls = _CLASS_OF.get(exc.code(), errors.BaiError)
    if cls is errors.InvalidArgument:
        return errors.InvalidArgument([], reason=reason or None, message=detail)
    return cls(detail, reason=reason or None, metadata=meta)
