"""Agents, images, sessions and kernels (the scheduler and lifecycle build on these).

String conventions (as upstream Backend.AI stores them): statuses are the proto
enum names without prefix ("PENDING", "ALIVE"); lifecycle reasons are kebab
case ("user-requested", "agent-lost"); session types and cluster modes are
lower case ("interactive", "single-node"); results "undefined", "success",
"failure". `bai.manager.sessions.names` converts between these and protos.

Status histories are JSONB lists of {"status", "time", "reason", "message"}.
"""

from __future__ import annotations

import uuid
from datetime import datetime
from typing import Any

from sqlalchemy import BigInteger, ForeignKey, Index, String, Text, UniqueConstraint, func
from sqlalchemy.orm import Mapped, mapped_column

from bai.manager.db.base import Base, created_at, modified_at, new_uuid


def _now() -> Mapped[datetime]:
    return mapped_column(server_default=func.now(), nullable=False)


class AgentRow(Base):
    __tablename__ = "agents"
    id: Mapped[str] = mapped_column(String(64), primary_key=True)
    status: Mapped[str] = mapped_column(String(16), default="ALIVE")
    status_changed_at: Mapped[datetime] = _now()
    region: Mapped[str] = mapped_column(String(64), default="")
    scaling_group: Mapped[str] = mapped_column(
        ForeignKey("scaling_groups.name", ondelete="RESTRICT"), index=True
    )
    schedulable: Mapped[bool] = mapped_column(default=True)
    # gRPC address of the agent's AgentService.
    addr: Mapped[str] = mapped_column(String(256))
    # Where kernel host ports are reachable.
    public_host: Mapped[str] = mapped_column(String(256), default="")
    architecture: Mapped[str] = mapped_column(String(32), default="x86_64")
    version: Mapped[str] = mapped_column(String(64), default="")
    # Random per agent process; a new one means the agent restarted.
    boot_id: Mapped[str] = mapped_column(String(64), default="")
    # Highest registry-stream event seq stored for boot_id.
    last_acked_seq: Mapped[int] = mapped_column(BigInteger, default=0)
    # Manager replica holding the agent's stream.
    manager_id: Mapped[str] = mapped_column(String(64), default="")
    available_slots: Mapped[dict[str, str]] = mapped_column(default=dict)
    occupied_slots: Mapped[dict[str, str]] = mapped_column(default=dict)
    slot_types: Mapped[dict[str, Any]] = mapped_column(default=dict)
    hardware_info: Mapped[dict[str, Any]] = mapped_column(default=dict)
    compute_plugins: Mapped[dict[str, Any]] = mapped_column(default=dict)
    # "<canonical>@<architecture>" of every image present on the node.
    images: Mapped[list[str]] = mapped_column(default=list)
    # 0: unlimited.
    max_containers: Mapped[int] = mapped_column(default=0)
    auto_terminate_abusing_kernel: Mapped[bool] = mapped_column(default=False)
    first_contact: Mapped[datetime] = created_at()
    last_heartbeat_at: Mapped[datetime | None] = mapped_column(default=None)
    lost_at: Mapped[datetime | None] = mapped_column(default=None)
    # Optimistic-concurrency counter for the scheduler's applier: every change
    # of occupied_slots bumps it.
    revision: Mapped[int] = mapped_column(default=0)


class ImageRow(Base):
    """An image known to the manager (reported by agents or a registry scan)."""

    __tablename__ = "images"
    __table_args__ = (UniqueConstraint("canonical", "architecture"),)
    id: Mapped[uuid.UUID] = new_uuid()
    canonical: Mapped[str] = mapped_column(String(512))
    architecture: Mapped[str] = mapped_column(String(32), default="x86_64")
    # Column "registry"; the attribute name "registry" is reserved by SQLAlchemy.
    registry_name: Mapped[str] = mapped_column("registry", String(256), default="")
    digest: Mapped[str] = mapped_column(String(128), default="")
    size_bytes: Mapped[int] = mapped_column(BigInteger, default=0)
    # "compute", "system" or "service".
    image_type: Mapped[str] = mapped_column(String(16), default="compute")
    # "ALIVE" or "DELETED".
    status: Mapped[str] = mapped_column(String(16), default="ALIVE")
    labels: Mapped[dict[str, str]] = mapped_column(default=dict)
    is_local: Mapped[bool] = mapped_column(default=False)
    owner_user_id: Mapped[uuid.UUID | None] = mapped_column(default=None)
    created_at: Mapped[datetime] = created_at()
    modified_at: Mapped[datetime] = modified_at()


class ImageAliasRow(Base):
    __tablename__ = "image_aliases"
    alias: Mapped[str] = mapped_column(String(256), primary_key=True)
    image_id: Mapped[uuid.UUID] = mapped_column(
        ForeignKey("images.id", ondelete="CASCADE"), index=True
    )


class SessionRow(Base):
    __tablename__ = "sessions"
    __table_args__ = (
        Index("ix_sessions_status_sgroup", "status", "scaling_group"),
        Index("ix_sessions_access_key_status", "access_key", "status"),
        Index("ix_sessions_user_status", "user_id", "status"),
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
    status_reason: Mapped[str] = mapped_column(String(48), default="")
    status_info: Mapped[str] = mapped_column(String(256), default="")
    status_changed_at: Mapped[datetime] = _now()
    status_data: Mapped[dict[str, Any]] = mapped_column(default=dict)
    status_history: Mapped[list[Any]] = mapped_column(default=list)
    # Failed checks of the last scheduling attempt while PENDING.
    scheduling_diagnostics: Mapped[list[Any]] = mapped_column(default=list)
    scheduling_attempts: Mapped[int] = mapped_column(default=0)
    # Retries of the current transitional state (timeout sweeper's budget).
    transition_retries: Mapped[int] = mapped_column(default=0)
    requested_slots: Mapped[dict[str, str]] = mapped_column(default=dict)
    occupied_slots: Mapped[dict[str, str]] = mapped_column(default=dict)
    resource_opts: Mapped[dict[str, Any]] = mapped_column(default=dict)
    environ: Mapped[dict[str, str]] = mapped_column(default=dict)
    mounts: Mapped[list[Any]] = mapped_column(default=list)
    startup_command: Mapped[str] = mapped_column(Text, default="")
    bootstrap_script: Mapped[str] = mapped_column(Text, default="")
    # Seconds; 0: none.
    batch_timeout: Mapped[int] = mapped_column(default=0)
    priority: Mapped[int] = mapped_column(default=10)
    is_preemptible: Mapped[bool] = mapped_column(default=True)
    dependencies: Mapped[list[str]] = mapped_column(default=list)
    callback_url: Mapped[str] = mapped_column(Text, default="")
    preopen_ports: Mapped[list[Any]] = mapped_column(default=list)
    agent_list: Mapped[list[str]] = mapped_column(default=list)
    agent_ids: Mapped[list[str]] = mapped_column(default=list)
    tag: Mapped[str] = mapped_column(String(64), default="")
    result: Mapped[str] = mapped_column(String(16), default="undefined")
    exit_code: Mapped[int | None] = mapped_column(default=None)
    starts_at: Mapped[datetime | None] = mapped_column(default=None)
    started_at: Mapped[datetime | None] = mapped_column(default=None)
    terminated_at: Mapped[datetime | None] = mapped_column(default=None)
    created_at: Mapped[datetime] = created_at()
    modified_at: Mapped[datetime] = modified_at()


class KernelRow(Base):
    __tablename__ = "kernels"
    __table_args__ = (Index("ix_kernels_agent_status", "agent_id", "status"),)
    id: Mapped[uuid.UUID] = new_uuid()
    session_id: Mapped[uuid.UUID] = mapped_column(
        ForeignKey("sessions.id", ondelete="CASCADE"), index=True
    )
    agent_id: Mapped[str | None] = mapped_column(
        ForeignKey("agents.id", ondelete="SET NULL"), default=None
    )
    agent_addr: Mapped[str] = mapped_column(String(256), default="")
    cluster_role: Mapped[str] = mapped_column(String(16), default="main")
    cluster_idx: Mapped[int] = mapped_column(default=1)
    local_rank: Mapped[int] = mapped_column(default=0)
    cluster_hostname: Mapped[str] = mapped_column(String(64), default="main1")
    image: Mapped[str] = mapped_column(String(512))
    architecture: Mapped[str] = mapped_column(String(32), default="x86_64")
    status: Mapped[str] = mapped_column(String(32), default="PENDING")
    status_reason: Mapped[str] = mapped_column(String(48), default="")
    status_info: Mapped[str] = mapped_column(String(256), default="")
    status_changed_at: Mapped[datetime] = _now()
    status_history: Mapped[list[Any]] = mapped_column(default=list)
    container_id: Mapped[str | None] = mapped_column(String(128), default=None)
    requested_slots: Mapped[dict[str, str]] = mapped_column(default=dict)
    occupied_slots: Mapped[dict[str, str]] = mapped_column(default=dict)
    attached_devices: Mapped[list[Any]] = mapped_column(default=list)
    service_ports: Mapped[list[Any]] = mapped_column(default=list)
    host_ports: Mapped[list[Any]] = mapped_column(default=list)
    kernel_host: Mapped[str] = mapped_column(String(256), default="")
    exit_code: Mapped[int | None] = mapped_column(default=None)
    created_at: Mapped[datetime] = created_at()
    started_at: Mapped[datetime | None] = mapped_column(default=None)
    terminated_at: Mapped[datetime | None] = mapped_column(default=None)
