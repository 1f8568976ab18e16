"""vfolder lifecycle and sharing

Folder names become unique among the owner's live folders (partial indexes,
so trashed folders keep their names); invitations allow one pending row per
folder and invitee while answered ones stay as history.

Revision ID: 0003
Revises: 0002
Create Date: 2026-11-27 07:16:34.457415
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0003"
down_revision = "0002"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.drop_constraint(
        op.f("uq_vfolder_invitations_vfolder_id_invitee_id_state"),
        "vfolder_invitations",
        type_="unique",
    )
    op.create_index(
        "ix_vfolder_invitations_invitee_id", "vfolder_invitations", ["invitee_id"], unique=False
    )
    op.create_index(
        "ix_vfolder_invitations_inviter_id", "vfolder_invitations", ["inviter_id"], unique=False
    )
    op.create_index(
        "uq_vfolder_invitations_pending",
        "vfolder_invitations",
        ["vfolder_id", "invitee_id"],
        unique=True,
        postgresql_where=sa.text("state = 'pending'"),
    )
    op.add_column(
        "vfolders", sa.Column("creator", sa.String(length=254), server_default="", nullable=False)
    )
    op.add_column(
        "vfolders",
        sa.Column(
            "status_changed_at",
            sa.DateTime(timezone=True),
            server_default=sa.text("now()"),
            nullable=False,
        ),
    )
    op.add_column("vfolders", sa.Column("last_used_at", sa.DateTime(timezone=True), nullable=True))
    op.create_index(
        "uq_vfolders_project_live_name",
        "vfolders",
        ["project_id", "name"],
        unique=True,
        postgresql_where=sa.text(
            "status NOT IN ('delete-pending', 'delete-ongoing', 'delete-complete', 'delete-error')"
        ),
    )
    op.create_index(
        "uq_vfolders_user_live_name",
        "vfolders",
        ["user_id", "name"],
        unique=True,
        postgresql_where=sa.text(
            "status NOT IN ('delete-pending', 'delete-ongoing', 'delete-complete', 'delete-error')"
        ),
    )


def downgrade() -> None:
    op.drop_index(
        "uq_vfolders_user_live_name",
        table_name="vfolders",
        postgresql_where=sa.text(
            "status NOT IN ('delete-pending', 'delete-ongoing', 'delete-complete', 'delete-error')"
        ),
    )
    op.drop_index(
        "uq_vfolders_project_live_name",
        table_name="vfolders",
        postgresql_where=sa.text(
            "status NOT IN ('delete-pending', 'delete-ongoing', 'delete-complete', 'delete-error')"
        ),
    )
    op.drop_column("vfolders", "last_used_at")
    op.drop_column("vfolders", "status_changed_at")
    op.drop_column("vfolders", "creator")
    op.drop_index(
        "uq_vfolder_invitations_pending",
        table_name="vfolder_invitations",
        postgresql_where=sa.text("state = 'pending'"),
    )
    op.drop_index("ix_vfolder_invitations_inviter_id", table_name="vfolder_invitations")
    op.drop_index("ix_vfolder_invitations_invitee_id", table_name="vfolder_invitations")
    op.create_unique_constraint(
        op.f("uq_vfolder_invitations_vfolder_id_invitee_id_state"),
        "vfolder_invitations",
        ["vfolder_id", "invitee_id", "state"],
        postgresql_nulls_not_distinct=False,
    )
