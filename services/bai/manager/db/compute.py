"""Agents, sessions and kernels (the scheduler and lifecycle build on these)."""

from __future__ import annotations

import uuid
from datetime import datetime
from typing import Any

from sqlalchemy import ForeignKey, Index, String, Text
from sqlalchemy.orm import Mapped, mapped_column

from bai.manager.db.base import Base, created_at, modified_at, new_uuid


class AgentRow(Base):
    __tablename__ = "agents"
    id: Mapped[str] = mapped_column(String(64), primary_key=True)
    status: Mapped[str] = mapped_column(String(16), default="alive")
    region: Mapped[str] = mapped_column(String(64), default="")
    scaling_group: Mapped[str] = mapped_column(
        ForeignKey("scaling_groups.name", ondelete="RESTRICT"), index=True
    )
    schedulable: Mapped[bool] = mapped_column(default=True)
    addr: Mapped[str] = mapped_column(String(256))
    architecture: Mapped[str] = mapped_column(String(32), default="x86_64")
    version: Mapped[str] = mapped_column(String(64), default="")
    available_slots: Mapped[dict[str, str]] = mapped_column(default=dict)
    occupied_slots: Mapped[dict[str, str]] = mapped_column(default=dict)
    hardware_info: Mapped[dict[str, Any]] = mapped_column(default=dict)
    compute_plugins: Mapped[dict[str, Any]] = mapped_column(default=dict)
    first_contact: Mapped[datetime] = created_at()
    lost_at: Mapped[datetime | None] = mapped_column(default=None)
    # Optimistic-concurrency counter for the scheduler's applier.
    revision: Mapped[int] = mapped_column(default=0)


class SessionRow(Base):
    __tablename__ = "sessions"
    __table_args__ = (
        Index("ix_sessions_status_sgroup", "status", "scaling_group"),
        Index("ix_sessions_access_key_status", "access_key", "status"),
    )
    id: Mapped[uuid.UUID] = new_uuid()
    name: Mapped[str] = mapped_column(String(64))
    request_id: Mapped[str | None] = mapped_column(String(64), unique=True, default=None)
    session_type: Mapped[str] = mapped_column(String(16), default="interactive")
    cluster_mode: Mapped[str] = mapped_column(String(16), default="single-node")
    cluster_size: Mapped[int] = mapped_column(default=1)
    domain_name: Mapped[str] = mapped_column(ForeignKey("domains.name", ondelete="RESTRICT"))
    project_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("projects.id", ondelete="RESTRICT"))
    user_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("users.id", ondelete="RESTRICT"))
    access_key: Mapped[str] = mapped_column(String(32))
    # The group's name, not a reference: finished sessions keep it as history
    # and must not stop the group from being deleted.
    scaling_group: Mapped[str] = mapped_column(String(64))
    image: Mapped[str] = mapped_column(String(512))
    architecture: Mapped[str] = mapped_column(String(32), default="x86_64")
    status: Mapped[str] = mapped_column(String(32), default="PENDING")
    status_info: Mapped[str] = mapped_column(String(256), default="")
    status_data: Mapped[dict[str, Any]] = mapped_column(default=dict)
    status_history: Mapped[list[Any]] = mapped_column(default=list)
    requested_slots: Mapped[dict[str, str]] = mapped_column(default=dict)
    occupied_slots: Mapped[dict[str, str]] = mapped_column(default=dict)
    environ: Mapped[dict[str, str]] = mapped_column(default=dict)
    mounts: Mapped[list[Any]] = mapped_column(default=list)
    startup_command: Mapped[str] = mapped_column(Text, default="")
    bootstrap_script: Mapped[str] = mapped_column(Text, default="")
    batch_timeout: Mapped[int] = mapped_column(default=0)
    priority: Mapped[int] = mapped_column(default=0)
    result: Mapped[str] = mapped_column(String(16), default="undefined")
    exit_code: Mapped[int | None] = mapped_column(default=None)
    starts_at: Mapped[datetime | None] = mapped_column(default=None)
    terminated_at: Mapped[datetime | None] = mapped_column(default=None)
    created_at: Mapped[datetime] = created_at()
    modified_at: Mapped[datetime] = modified_at()


class KernelRow(Base):
    __tablename__ = "kernels"
    id: Mapped[uuid.UUID] = new_uuid()
    session_id: Mapped[uuid.UUID] = mapped_column(
        ForeignKey("sessions.id", ondelete="CASCADE"), index=True
    )
    agent_id: Mapped[str | None] = mapped_column(
        ForeignKey("agents.id", ondelete="SET NULL"), index=True, default=None
    )
    cluster_role: Mapped[str] = mapped_column(String(16), default="main")
    cluster_idx: Mapped[int] = mapped_column(default=1)
    cluster_hostname: Mapped[str] = mapped_column(String(64), default="main1")
    image: Mapped[str] = mapped_column(String(512))
    status: Mapped[str] = mapped_column(String(32), default="PENDING")
    status_info: Mapped[str] = mapped_column(String(256), default="")
    status_history: Mapped[list[Any]] = mapped_column(default=list)
    container_id: Mapped[str | None] = mapped_column(String(128), default=None)
    requested_slots: Mapped[dict[str, str]] = mapped_column(default=dict)
    occupied_slots: Mapped[dict[str, str]] = mapped_column(default=dict)
    service_ports: Mapped[list[Any]] = mapped_column(default=list)
    kernel_host: Mapped[str] = mapped_column(String(256), default="")
    exit_code: Mapped[int | None] = mapped_column(default=None)
    created_at: Mapped[datetime] = created_at()
    terminated_at: Mapped[datetime | None] = mapped_column(default=None)
