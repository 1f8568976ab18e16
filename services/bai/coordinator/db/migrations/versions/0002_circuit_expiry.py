"""circuits expire: circuits.expires_at

Revision ID: 0002
Revises: 0001
Create Date: 2026-11-27 08:10:00
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0002"
down_revision = "0001"
branch_labels = None
depends_on = None


def _schema() -> str:
    schema = op.get_context().version_table_schema
    assert schema, "run through bai.coordinator.db.migrations (it names the schema)"
    return str(schema)


def upgrade() -> None:
    # NULL: the circuit never expires (every circuit made before this revision).
    op.add_column(
        "circuits",
        sa.Column("expires_at", sa.DateTime(timezone=True), nullable=True),
        schema=_schema(),
    )


def downgrade() -> None:
    op.drop_column("circuits", "expires_at", schema=_schema())
