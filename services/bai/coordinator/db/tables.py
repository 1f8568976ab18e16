"""SQLAlchemy Core tables of the coordinator.

They are declared in the schema "coordinator"; an engine made by
`bai.coordinator.repository.create_engine` maps that name to the configured
schema (tests use one schema each).
"""

from __future__ import annotations

from sqlalchemy import (
    Boolean,
    Column,
    DateTime,
    ForeignKey,
    Integer,
    MetaData,
    String,
    Table,
    UniqueConstraint,
    func,
)
from sqlalchemy.dialects.postgresql import JSONB, UUID

SCHEMA = "coordinator"

metadata = MetaData(
    schema=SCHEMA,
    naming_convention={
        "ix": "ix_%(column_0_label)s",
        "uq": "uq_%(table_name)s_%(column_0_N_name)s",
        "fk": "fk_%(table_name)s_%(column_0_name)s_%(referred_table_name)s",
        "pk": "pk_%(table_name)s",
    },
)

workers = Table(
    "workers",
    metadata,
    Column("authority", String(255), primary_key=True),
    Column("frontend_mode", String(16), nullable=False),
    Column("hostname", String(255), nullable=False),
    Column("use_tls", Boolean, nullable=False, default=False),
    Column("port_start", Integer, nullable=False, default=0),
    Column("port_end", Integer, nullable=False, default=0),
    Column("wildcard_domain", String(255), nullable=False, default=""),
    Column("available_slots", Integer, nullable=False, default=0),
    Column("status", String(16), nullable=False),
    Column("last_heartbeat_at", DateTime(timezone=True), nullable=False),
    Column("created_at", DateTime(timezone=True), nullable=False, server_default=func.now()),
)

circuits = Table(
    "circuits",
    metadata,
    Column("id", UUID(as_uuid=True), primary_key=True),
    Column("request_id", String(64), nullable=False, unique=True),
    Column("request_digest", String(64), nullable=False),
    Column("app", String(255), nullable=False),
    Column("protocol", String(16), nullable=False),
    Column("app_mode", String(16), nullable=False),
    Column("frontend_mode", String(16), nullable=False),
    Column(
        "worker",
        String(255),
        ForeignKey(f"{SCHEMA}.workers.authority", ondelete="CASCADE"),
        nullable=False,
    ),
    # Exactly one of port (PORT mode) and subdomain (WILDCARD mode) is set;
    # the unique constraints make a slot impossible to hand out twice.
    Column("port", Integer, nullable=True),
    Column("subdomain", String(63), nullable=True),
    Column("envs", JSONB, nullable=False),
    Column("arguments", JSONB, nullable=False),
    Column("open_to_public", Boolean, nullable=False),
    Column("allowed_client_ips", JSONB, nullable=False),
    Column("user_id", String(64), nullable=False),
    Column("endpoint_id", String(64), nullable=False),
    Column("runtime_variant", String(64), nullable=False),
    Column("session_ids", JSONB, nullable=False),
    Column("routes", JSONB, nullable=False),
    Column("created_at", DateTime(timezone=True), nullable=False, server_default=func.now()),
    Column("updated_at", DateTime(timezone=True), nullable=False, server_default=func.now()),
    # NULL: never expires.
    Column("expires_at", DateTime(timezone=True), nullable=True),
    UniqueConstraint("worker", "port"),
    UniqueConstraint("worker", "subdomain"),
)

# App tokens already redeemed (each is good once); kept until they expire.
spent_app_tokens = Table(
    "spent_app_tokens",
    metadata,
    Column("jti", String(64), primary_key=True),
    Column("circuit_id", UUID(as_uuid=True), nullable=False),
    Column("expires_at", DateTime(timezone=True), nullable=False, index=True),
)
