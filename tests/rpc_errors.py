"""Reading google.rpc.Status details off a failed call in tests."""

from __future__ import annotations

import grpc
from google.rpc import error_details_pb2, status_pb2


def status_of(exc: grpc.aio.AioRpcError) -> status_pb2.Status:
    for key, value in exc.trailing_metadata() or ():
        if key == "grpc-status-details-bin":
            status = status_pb2.Status()
            status.ParseFromString(value)  # type: ignore[arg-type]
            return status
    raise AssertionError(f"no status details on {exc.code()} {exc.details()}")


def reason_of(exc: grpc.aio.AioRpcError) -> str:
    for detail in status_of(exc).details:
        info = error_details_pb2.ErrorInfo()
        if detail.Unpack(info):
            assert info.domain == "bai"
            return info.reason
    raise AssertionError("no ErrorInfo in status details")


def violated_fields(exc: grpc.aio.AioRpcError) -> list[str]:
    for detail in status_of(exc).details:
        bad = error_details_pb2.BadRequest()
        if detail.Unpack(bad):
            return [v.field for v in bad.field_violations]
    return []
