"""circuits, workers and spent app tokens

Revision ID: 0001
Revises:
Create Date: 2026-11-27 07:30:00
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

revision = "0001"
down_revision = None
branch_labels = None
depends_on = None


def _schema() -> str:
    schema = op.get_context().version_table_schema
    assert schema, "run through bai.coordinator.db.migrations (it names the schema)"
    return str(schema)


def upgrade() -> None:
    schema = _schema()
    now = sa.text("now()")
    op.create_table(
        "workers",
        sa.Column("authority", sa.String(255), nullable=False),
        sa.Column("frontend_mode", sa.String(16), nullable=False),
        sa.Column("hostname", sa.String(255), nullable=False),
        sa.Column("use_tls", sa.Boolean(), nullable=False),
        sa.Column("port_start", sa.Integer(), nullable=False),
        sa.Column("port_end", sa.Integer(), nullable=False),
        sa.Column("wildcard_domain", sa.String(255), nullable=False),
        sa.Column("available_slots", sa.Integer(), nullable=False),
        sa.Column("status", sa.String(16), nullable=False),
        sa.Column("last_heartbeat_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), server_default=now, nullable=False),
        sa.PrimaryKeyConstraint("authority", name="pk_workers"),
        schema=schema,
    )
    jsonb = postgresql.JSONB(astext_type=sa.Text())
    op.create_table(
        "circuits",
        sa.Column("id", sa.UUID(), nullable=False),
        sa.Column("request_id", sa.String(64), nullable=False),
        sa.Column("request_digest", sa.String(64), nullable=False),
        sa.Column("app", sa.String(255), nullable=False),
        sa.Column("protocol", sa.String(16), nullable=False),
        sa.Column("app_mode", sa.String(16), nullable=False),
        sa.Column("frontend_mode", sa.String(16), nullable=False),
        sa.Column("worker", sa.String(255), nullable=False),
        sa.Column("port", sa.Integer(), nullable=True),
        sa.Column("subdomain", sa.String(63), nullable=True),
        sa.Column("envs", jsonb, nullable=False),
        sa.Column("arguments", jsonb, nullable=False),
        sa.Column("open_to_public", sa.Boolean(), nullable=False),
        sa.Column("allowed_client_ips", jsonb, nullable=False),
        sa.Column("user_id", sa.String(64), nullable=False),
        sa.Column("endpoint_id", sa.String(64), nullable=False),
        sa.Column("runtime_variant", sa.String(64), nullable=False),
        sa.Column("session_ids", jsonb, nullable=False),
        sa.Column("routes", jsonb, nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), server_default=now, nullable=False),
        sa.Column("updated_at", sa.DateTime(timezone=True), server_default=now, nullable=False),
        sa.ForeignKeyConstraint(
            ["worker"],
            [f"{schema}.workers.authority"],
            name="fk_circuits_worker_workers",
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("id", name="pk_circuits"),
        sa.UniqueConstraint("request_id", name="uq_circuits_request_id"),
        sa.UniqueConstraint("worker", "port", name="uq_circuits_worker_port"),
        sa.UniqueConstraint("worker", "subdomain", name="uq_circuits_worker_subdomain"),
        schema=schema,
    )
    op.create_table(
        "spent_app_tokens",
        sa.Column("jti", sa.String(64), nullable=False),
        sa.Column("circuit_id", sa.UUID(), nullable=False),
        sa.Column("expires_at", sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("jti", name="pk_spent_app_tokens"),
        schema=schema,
    )
    op.create_index(
        "ix_spent_app_tokens_expires_at", "spent_app_tokens", ["expires_at"], schema=schema
    )


def downgrade() -> None:
    schema = _schema()
    op.drop_table("spent_app_tokens", schema=schema)
    op.drop_table("circuits", schema=schema)
    op.drop_table("workers", schema=schema)
