"""Tenancy and identity: domains -> projects -> users, keypairs."""

from __future__ import annotations

import uuid
from datetime import datetime
from typing import Any

from sqlalchemy import BigInteger, ForeignKey, Index, String, UniqueConstraint, func
from sqlalchemy.dialects.postgresql import JSONB
from sqlalchemy.orm import Mapped, mapped_column

from bai.manager.db.base import Base, created_at, modified_at, new_uuid


class DomainRow(Base):
    __tablename__ = "domains"
    name: Mapped[str] = mapped_column(String(64), primary_key=True)
    description: Mapped[str] = mapped_column(String(1024), default="")
    is_active: Mapped[bool] = mapped_column(default=True)
    total_resource_slots: Mapped[dict[str, str]] = mapped_column(default=dict)
    allowed_vfolder_hosts: Mapped[dict[str, Any]] = mapped_column(default=dict)
    allowed_docker_registries: Mapped[list[str]] = mapped_column(default=list)
    created_at: Mapped[datetime] = created_at()
    modified_at: Mapped[datetime] = modified_at()


class ProjectRow(Base):
    __tablename__ = "projects"
    __table_args__ = (UniqueConstraint("domain_name", "name"),)
    id: Mapped[uuid.UUID] = new_uuid()
    name: Mapped[str] = mapped_column(String(64))
    domain_name: Mapped[str] = mapped_column(ForeignKey("domains.name", ondelete="RESTRICT"))
    description: Mapped[str] = mapped_column(String(1024), default="")
    is_active: Mapped[bool] = mapped_column(default=True)
    type: Mapped[str] = mapped_column(String(32), default="general")
    total_resource_slots: Mapped[dict[str, str]] = mapped_column(default=dict)
    allowed_vfolder_hosts: Mapped[dict[str, Any]] = mapped_column(default=dict)
    resource_policy: Mapped[str] = mapped_column(
        ForeignKey("project_resource_policies.name", ondelete="RESTRICT")
    )
    created_at: Mapped[datetime] = created_at()
    modified_at: Mapped[datetime] = modified_at()


class UserRow(Base):
    __tablename__ = "users"
    id: Mapped[uuid.UUID] = new_uuid()
    username: Mapped[str] = mapped_column(String(64), unique=True)
    email: Mapped[str] = mapped_column(String(254), unique=True)
    password_hash: Mapped[str] = mapped_column(String(256))
    full_name: Mapped[str] = mapped_column(String(256), default="")
    description: Mapped[str] = mapped_column(String(1024), default="")
    domain_name: Mapped[str] = mapped_column(ForeignKey("domains.name", ondelete="RESTRICT"))
    role: Mapped[str] = mapped_column(String(16), default="user")
    status: Mapped[str] = mapped_column(String(32), default="active")
    need_password_change: Mapped[bool] = mapped_column(default=False)
    resource_policy: Mapped[str] = mapped_column(
        ForeignKey("user_resource_policies.name", ondelete="RESTRICT")
    )
    allowed_client_ip: Mapped[list[str]] = mapped_column(default=list)
    sudo_session_enabled: Mapped[bool] = mapped_column(default=False)
    container_uid: Mapped[int | None] = mapped_column(default=None)
    container_main_gid: Mapped[int | None] = mapped_column(default=None)
    container_gids: Mapped[list[int]] = mapped_column(JSONB, default=list)
    created_at: Mapped[datetime] = created_at()
    modified_at: Mapped[datetime] = modified_at()


# Emails are unique compared case-insensitively.
Index("uq_users_email_lower", func.lower(UserRow.email), unique=True)


class ProjectMemberRow(Base):
    __tablename__ = "project_members"
    project_id: Mapped[uuid.UUID] = mapped_column(
        ForeignKey("projects.id", ondelete="CASCADE"), primary_key=True
    )
    user_id: Mapped[uuid.UUID] = mapped_column(
        ForeignKey("users.id", ondelete="CASCADE"), primary_key=True
    )
    __table_args__ = (Index("ix_project_members_user_id", "user_id"),)


class KeypairRow(Base):
    __tablename__ = "keypairs"
    access_key: Mapped[str] = mapped_column(String(32), primary_key=True)
    secret_key: Mapped[str] = mapped_column(String(64))
    user_id: Mapped[uuid.UUID] = mapped_column(
        ForeignKey("users.id", ondelete="CASCADE"), index=True
    )
    is_active: Mapped[bool] = mapped_column(default=True)
    is_admin: Mapped[bool] = mapped_column(default=False)
    resource_policy: Mapped[str] = mapped_column(
        ForeignKey("keypair_resource_policies.name", ondelete="RESTRICT")
    )
    rate_limit: Mapped[int] = mapped_column(default=0)
    num_queries: Mapped[int] = mapped_column(BigInteger, default=0)
    last_used_at: Mapped[datetime | None] = mapped_column(default=None)
    created_at: Mapped[datetime] = created_at()
