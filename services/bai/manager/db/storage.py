"""Virtual folders and their sharing (the storage issue builds on these)."""

from __future__ import annotations

import uuid
from datetime import datetime

from sqlalchemy import ForeignKey, String, UniqueConstraint
from sqlalchemy.orm import Mapped, mapped_column

from bai.manager.db.base import Base, created_at, modified_at, new_uuid


class VFolderRow(Base):
    __tablename__ = "vfolders"
    id: Mapped[uuid.UUID] = new_uuid()
    name: Mapped[str] = mapped_column(String(64))
    host: Mapped[str] = mapped_column(String(128))
    quota_scope_id: Mapped[str] = mapped_column(String(64))
    usage_mode: Mapped[str] = mapped_column(String(16), default="general")
    permission: Mapped[str] = mapped_column(String(8), default="rw")
    ownership_type: Mapped[str] = mapped_column(String(16), default="user")
    user_id: Mapped[uuid.UUID | None] = mapped_column(
        ForeignKey("users.id", ondelete="CASCADE"), index=True, default=None
    )
    project_id: Mapped[uuid.UUID | None] = mapped_column(
        ForeignKey("projects.id", ondelete="CASCADE"), index=True, default=None
    )
    domain_name: Mapped[str] = mapped_column(ForeignKey("domains.name", ondelete="RESTRICT"))
    cloneable: Mapped[bool] = mapped_column(default=False)
    status: Mapped[str] = mapped_column(String(32), default="ready")
    max_size: Mapped[int | None] = mapped_column(default=None)
    created_at: Mapped[datetime] = created_at()
    modified_at: Mapped[datetime] = modified_at()


class VFolderPermissionRow(Base):
    __tablename__ = "vfolder_permissions"
    vfolder_id: Mapped[uuid.UUID] = mapped_column(
        ForeignKey("vfolders.id", ondelete="CASCADE"), primary_key=True
    )
    user_id: Mapped[uuid.UUID] = mapped_column(
        ForeignKey("users.id", ondelete="CASCADE"), primary_key=True
    )
    permission: Mapped[str] = mapped_column(String(8), default="ro")


class VFolderInvitationRow(Base):
    __tablename__ = "vfolder_invitations"
    __table_args__ = (UniqueConstraint("vfolder_id", "invitee_id", "state"),)
    id: Mapped[uuid.UUID] = new_uuid()
    vfolder_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("vfolders.id", ondelete="CASCADE"))
    inviter_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("users.id", ondelete="CASCADE"))
    invitee_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("users.id", ondelete="CASCADE"))
    permission: Mapped[str] = mapped_column(String(8), default="ro")
    state: Mapped[str] = mapped_column(String(16), default="pending")
    created_at: Mapped[datetime] = created_at()
    modified_at: Mapped[datetime] = modified_at()
