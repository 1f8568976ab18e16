"""Coordinator configuration (TOML file, BAI_COORDINATOR__* environment, etcd global)."""

from __future__ import annotations

from pathlib import Path

from pydantic import BaseModel, Field

from bai.common.component import ComponentConfig


class DatabaseConfig(BaseModel):
    url: str = "postgresql+asyncpg://bai:bai@127.0.0.1:8101/bai"
    # The coordinator keeps its tables (and its Alembic version) in this schema.
    schema_name: str = Field(default="coordinator", pattern=r"^[a-z_][a-z0-9_]{0,62}$")
    pool_size: int = Field(default=4, ge=1, le=100)


class AuthzConfig(BaseModel):
    """The HTTP ext_authz endpoint Envoy asks about every request without a valid cookie."""

    bind: str = "127.0.0.1"
    port: int = Field(default=10202, ge=0, le=65535)
    # HS256 secret of app tokens (shared with nobody but the manager through etcd).
    app_token_secret: str = Field(default="bai-dev-app-token-secret-change-me", min_length=32)
    # How long the cookie a redeemed token turns into stays valid.
    cookie_ttl_seconds: int = Field(default=12 * 3600, ge=60, le=30 * 86400)


class LocalWorkerConfig(BaseModel):
    """An Envoy this coordinator registers and keeps alive itself (the stack's app proxy)."""

    authority: str
    hostname: str = "127.0.0.1"
    frontend_mode: str = Field(default="port", pattern="^(port|wildcard)$")
    port_start: int = Field(default=10205, ge=1, le=65535)
    port_end: int = Field(default=10300, ge=1, le=65535)
    wildcard_domain: str = ""
    available_slots: int = Field(default=100, ge=0)
    # Its Envoy's admin, e.g. "http://127.0.0.1:10203": route health is read there.
    admin_url: str = ""


class XdsConfig(BaseModel):
    """Filesystem xDS: one directory per worker, each with lds.json and cds.json."""

    directory: Path = Path("state/coordinator/xds")
    # Address the app listeners bind on inside each worker's Envoy.
    listen_address: str = "0.0.0.0"
    # Active health checks of app backends.
    health_interval_seconds: float = Field(default=1.0, gt=0, le=60)
    unhealthy_threshold: int = Field(default=2, ge=1, le=10)
    connect_timeout_seconds: float = Field(default=1.0, gt=0, le=60)
    # CreateCircuit, UpdateRoutes and DeleteCircuit answer once the worker's Envoys on ADS
    # have ACKed the change, or after this long (0 = answer at once, as in files mode).
    apply_timeout_seconds: float = Field(default=5.0, ge=0, le=60)


class CoordinatorConfig(ComponentConfig):
    grpc_port: int = Field(default=10200, ge=0, le=65535)
    metrics_port: int = Field(default=10201, ge=0, le=65535)
    db: DatabaseConfig = DatabaseConfig()
    authz: AuthzConfig = AuthzConfig()
    xds: XdsConfig = XdsConfig()
    # Shared secret callers send as "x-bai-internal-token"; "" = not enforced (development).
    internal_token: str = ""
    # Told to workers at registration; 3 missed intervals make a worker LOST.
    heartbeat_interval_seconds: float = Field(default=10.0, gt=0, le=3600)
    local_workers: list[LocalWorkerConfig] = Field(default_factory=list)
    # How often expired circuits are looked for and removed.
    expiry_sweep_seconds: float = Field(default=1.0, gt=0, le=60)
