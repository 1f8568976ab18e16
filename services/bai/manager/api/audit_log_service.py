"""AuditLogService: thin edge over bai.manager.admin.audit_logs."""

from __future__ import annotations

from datetime import UTC, datetime

from google.protobuf.duration_pb2 import Duration
from google.protobuf.timestamp_pb2 import Timestamp

from bai.api.common.v1 import types_pb2
from bai.api.manager.v1 import audit_pb2, audit_pb2_grpc
from bai.manager.admin import audit_logs
from bai.manager.api.convert import timestamp
from bai.manager.api.rpc import Call, unary
from bai.manager.context import ManagerContext
from bai.manager.db.audit import AuditLogRow
from bai.manager.validation import Violations

STATUSES = {
    "success": audit_pb2.AUDIT_LOG_STATUS_SUCCESS,
    "failure": audit_pb2.AUDIT_LOG_STATUS_FAILURE,
}
# What datetime can hold: 0001-01-01T00:00:00Z to 9999-12-31T23:59:59Z.
MIN_SECONDS, MAX_SECONDS = -62135596800, 253402300799


def entry_to_proto(row: AuditLogRow) -> audit_pb2.AuditLogEntry:
    duration = Duration()
    duration.FromNanoseconds(int(row.duration_ms * 1_000_000))
    return audit_pb2.AuditLogEntry(
        id=str(row.id),
        created_at=timestamp(row.created_at),
        actor=types_pb2.Actor(
            user_id=str(row.actor_user_id) if row.actor_user_id else "",
            access_key=row.actor_access_key,
            email=row.actor_email,
        ),
        domain_name=row.domain_name,
        entity_type=row.entity_type,
        entity_id=row.entity_id,
        operation=row.operation,
        method=row.method,
        status=STATUSES.get(row.status, audit_pb2.AUDIT_LOG_STATUS_UNSPECIFIED),
        reason=row.reason,
        request_id=row.request_id,
        duration=duration,
    )


def _instant(v: Violations, field: str, ts: Timestamp) -> datetime | None:
    if not (MIN_SECONDS <= ts.seconds <= MAX_SECONDS and 0 <= ts.nanos < 1_000_000_000):
        v.add(field, "must be a valid timestamp between years 1 and 9999")
        return None
    return ts.ToDatetime(tzinfo=UTC)


class AuditLogServicer(audit_pb2_grpc.AuditLogServiceServicer):
    SERVICE = "bai.api.manager.v1.AuditLogService"

    def __init__(self, ctx: ManagerContext) -> None:
        self.ctx = ctx

    @unary()
    async def ListAuditLogs(
        self, request: audit_pb2.ListAuditLogsRequest, call: Call
    ) -> audit_pb2.ListAuditLogsResponse:
        v = Violations()
        size = v.page_size(request.page_size)
        if request.domain_name:
            v.name("domain_name", request.domain_name)
        user_id = v.uuid("user_id", request.user_id) if request.user_id else None
        v.text("entity_type", request.entity_type, 64)
        since = _instant(v, "since", request.since) if request.HasField("since") else None
        until = _instant(v, "until", request.until) if request.HasField("until") else None
        if since is not None and until is not None and until <= since:
            v.add("until", "must be after since")
        v.raise_if_any()
        filters = audit_logs.AuditFilter(
            request.domain_name, user_id, request.entity_type, since, until
        )
        async with self.ctx.sessions() as db:
            rows, token = await audit_logs.list_audit_logs(
                db, call.principal, filters, size, request.page_token
            )
        return audit_pb2.ListAuditLogsResponse(
            entries=[entry_to_proto(r) for r in rows], next_page_token=token
        )
