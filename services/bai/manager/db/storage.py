"""Virtual folders and their sharing (the storage issue builds on these)."""

from __future__ import annotations

import uuid
from datetime import datetime

from sqlalchemy import ForeignKey, Index, String, func, text
from sqlalchemy.orm import Mapped, mapped_column

from bai.manager.db.base import Base, created_at, modified_at, new_uuid

# Folders in these statuses are in the trash or gone: their names are free.
DELETED_STATUSES = ("delete-pending", "delete-ongoing", "delete-complete", "delete-error")
_LIVE = text(
    "status NOT IN ('delete-pending', 'delete-ongoing', 'delete-complete', 'delete-error')"
)


class VFolderRow(Base):
    __tablename__ = "vfolders"
    __table_args__ = (
        # Names are unique among the owner's live folders (user or project).
        Index(
            "uq_vfolders_user_live_name",
            "user_id",
            "name",
            unique=True,
            postgresql_where=_LIVE,
        ),
        Index(
            "uq_vfolders_project_live_name",
            "project_id",
            "name",
            unique=True,
            postgresql_where=_LIVE,
        ),
    )
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
    # Email of whoever created it.
    creator: Mapped[str] = mapped_column(String(254), server_default="", default="")
    status_changed_at: Mapped[datetime] = mapped_column(server_default=func.now())
    last_used_at: Mapped[datetime | None] = mapped_column(default=None)
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
    __table_args__ = (
        # At most one pending invitation per folder and invitee; answered ones
        # stay as history.
        Index(
            "uq_vfolder_invitations_pending",
            "vfolder_id",
            "invitee_id",
            unique=True,
            postgresql_where=text("state = 'pending'"),
        ),
        Index("ix_vfolder_invitations_invitee_id", "invitee_id"),
        Index("ix_vfolder_invitations_inviter_id", "inviter_id"),
    )
    id: Mapped[uuid.UUID] = new_uuid()
    vfolder_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("vfolders.id", ondelete="CASCADE"))
    inviter_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("users.id", ondelete="CASCADE"))
    invitee_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("users.id", ondelete="CASCADE"))
    permission: Mapped[str] = mapped_column(String(8), default="ro")
    state: Mapped[str] = mapped_column(String(16), default="pending")
    created_at: Mapped[datetime] = created_at()
    modified_at: Mapped[datetime] = modified_at()
