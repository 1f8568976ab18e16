"""Resource policies (keypair, user, project) and scaling groups."""

from __future__ import annotations

import uuid
from datetime import datetime
from typing import Any

from sqlalchemy import BigInteger, ForeignKey, String
from sqlalchemy.orm import Mapped, mapped_column

from bai.manager.db.base import Base, created_at


class KeypairResourcePolicyRow(Base):
    __tablename__ = "keypair_resource_policies"
    name: Mapped[str] = mapped_column(String(64), primary_key=True)
    total_resource_slots: Mapped[dict[str, str]] = mapped_column(default=dict)
    default_for_unspecified: Mapped[str] = mapped_column(String(16), default="unlimited")
    max_session_lifetime: Mapped[int] = mapped_column(default=0)  # seconds, 0 = none
    max_concurrent_sessions: Mapped[int] = mapped_column(default=0)
    max_concurrent_sftp_sessions: Mapped[int] = mapped_column(default=0)
    max_pending_session_count: Mapped[int] = mapped_column(default=0)
    max_pending_session_resource_slots: Mapped[dict[str, str]] = mapped_column(default=dict)
    max_priority: Mapped[int] = mapped_column(default=10)
    max_containers_per_session: Mapped[int] = mapped_column(default=1)
    idle_timeout: Mapped[int] = mapped_column(default=0)  # seconds
    allowed_vfolder_hosts: Mapped[dict[str, Any]] = mapped_column(default=dict)
    created_at: Mapped[datetime] = created_at()


class UserResourcePolicyRow(Base):
    __tablename__ = "user_resource_policies"
    name: Mapped[str] = mapped_column(String(64), primary_key=True)
    max_vfolder_count: Mapped[int] = mapped_column(default=0)
    max_quota_scope_size: Mapped[int] = mapped_column(BigInteger, default=0)
    max_session_count_per_model_session: Mapped[int] = mapped_column(default=0)
    max_customized_image_count: Mapped[int] = mapped_column(default=0)
    max_concurrent_logins: Mapped[int] = mapped_column(default=0)
    created_at: Mapped[datetime] = created_at()


class ProjectResourcePolicyRow(Base):
    __tablename__ = "project_resource_policies"
    name: Mapped[str] = mapped_column(String(64), primary_key=True)
    max_vfolder_count: Mapped[int] = mapped_column(default=0)
    max_quota_scope_size: Mapped[int] = mapped_column(BigInteger, default=0)
    max_network_count: Mapped[int] = mapped_column(default=0)
    created_at: Mapped[datetime] = created_at()


class ScalingGroupRow(Base):
    __tablename__ = "scaling_groups"
    name: Mapped[str] = mapped_column(String(64), primary_key=True)
    description: Mapped[str] = mapped_column(String(1024), default="")
    is_active: Mapped[bool] = mapped_column(default=True)
    is_public: Mapped[bool] = mapped_column(default=True)
    is_default: Mapped[bool] = mapped_column(default=False)
    wsproxy_addr: Mapped[str] = mapped_column(String(1024), default="")
    driver: Mapped[str] = mapped_column(String(64), default="static")
    driver_opts: Mapped[dict[str, str]] = mapped_column(default=dict)
    scheduler: Mapped[str] = mapped_column(String(32), default="fifo")
    scheduler_opts: Mapped[dict[str, Any]] = mapped_column(default=dict)
    use_host_network: Mapped[bool] = mapped_column(default=False)
    created_at: Mapped[datetime] = created_at()


class ScalingGroupForDomainRow(Base):
    __tablename__ = "sgroups_for_domains"
    scaling_group: Mapped[str] = mapped_column(
        ForeignKey("scaling_groups.name", ondelete="CASCADE"), primary_key=True
    )
    domain_name: Mapped[str] = mapped_column(
        ForeignKey("domains.name", ondelete="CASCADE"), primary_key=True
    )


class ScalingGroupForProjectRow(Base):
    __tablename__ = "sgroups_for_projects"
    scaling_group: Mapped[str] = mapped_column(
        ForeignKey("scaling_groups.name", ondelete="CASCADE"), primary_key=True
    )
    project_id: Mapped[uuid.UUID] = mapped_column(
        ForeignKey("projects.id", ondelete="CASCADE"), primary_key=True
    )


class ScalingGroupForKeypairRow(Base):
    __tablename__ = "sgroups_for_keypairs"
    scaling_group: Mapped[str] = mapped_column(
        ForeignKey("scaling_groups.name", ondelete="CASCADE"), primary_key=True
    )
    access_key: Mapped[str] = mapped_column(
        ForeignKey("keypairs.access_key", ondelete="CASCADE"), primary_key=True
    )
