"""Audit log of every write, and remembered responses for idempotent retries."""

from __future__ import annotations

import uuid
from datetime import datetime

from sqlalchemy import Index, LargeBinary, String
from sqlalchemy.orm import Mapped, mapped_column

from bai.manager.db.base import Base, created_at, new_uuid


class AuditLogRow(Base):
    __tablename__ = "audit_logs"
    __table_args__ = (Index("ix_audit_logs_created_at", "created_at"),)
    id: Mapped[uuid.UUID] = new_uuid()
    created_at: Mapped[datetime] = created_at()
    actor_user_id: Mapped[uuid.UUID | None] = mapped_column(default=None, index=True)
    actor_access_key: Mapped[str] = mapped_column(String(32), default="")
    actor_email: Mapped[str] = mapped_column(String(254), default="")
    domain_name: Mapped[str] = mapped_column(String(64), default="", index=True)
    entity_type: Mapped[str] = mapped_column(String(32))
    entity_id: Mapped[str] = mapped_column(String(128), default="")
    operation: Mapped[str] = mapped_column(String(32))
    method: Mapped[str] = mapped_column(String(256))
    status: Mapped[str] = mapped_column(String(16))
    reason: Mapped[str] = mapped_column(String(64), default="")
    request_id: Mapped[str] = mapped_column(String(64), default="")
    duration_ms: Mapped[float] = mapped_column(default=0.0)


class RequestLogRow(Base):
    """Responses of create calls that carried a request_id (retries replay them)."""

    __tablename__ = "request_log"
    method: Mapped[str] = mapped_column(String(256), primary_key=True)
    request_id: Mapped[str] = mapped_column(String(64), primary_key=True)
    caller: Mapped[str] = mapped_column(String(64), primary_key=True)
    request_digest: Mapped[str] = mapped_column(String(64))
    response: Mapped[bytes] = mapped_column(LargeBinary)
    created_at: Mapped[datetime] = created_at()
