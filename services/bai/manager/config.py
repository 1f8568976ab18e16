"""Manager configuration (TOML file, BAI_MANAGER__* environment, etcd global)."""

from __future__ import annotations

from typing import Any

from pydantic import BaseModel, Field, field_validator

from bai.common.component import ComponentConfig


class DatabaseConfig(BaseModel):
    url: str = "postgresql+asyncpg://bai:bai@127.0.0.1:8101/bai"
    pool_size: int = Field(default=8, ge=1, le=200)


class RedisConfig(BaseModel):
    url: str = "redis://127.0.0.1:8111/0"


class AuthConfig(BaseModel):
    # Allowed difference between a signed timestamp and the server clock.
    max_clock_skew_seconds: int = Field(default=900, ge=1)
    token_ttl_seconds: int = Field(default=3600, ge=60, le=86400)
    # How long a keypair/user lookup may be served from memory. Deactivation
    # and key changes are broadcast over Redis, so this only bounds staleness
    # when that broadcast is lost.
    credential_cache_seconds: float = Field(default=5.0, ge=0)
    # Peers whose x-forwarded-for is believed (the Envoy gateway). Anyone else's
    # forwarded headers are ignored when checking users' allowed_client_ip.
    trusted_proxies: list[str] = Field(default_factory=lambda: ["127.0.0.1/32", "::1/128"])
    # How often counted keypair usage is written to the database.
    usage_flush_seconds: float = Field(default=10.0, gt=0)


class AgentConfig(BaseModel):
    """The agents' registry streams and liveness."""

    # Told to agents at registration: how often they send a heartbeat.
    heartbeat_interval: float = Field(default=20.0, gt=0)
    # An agent silent for this long becomes LOST and its kernels end (agent-lost).
    agent_lost_timeout: float = Field(default=30.0, gt=0)
    # How often the liveness sweeper looks for silent agents.
    liveness_sweep_interval: float = Field(default=5.0, gt=0)
    # Shared secret agents send as "x-bai-internal-token" (and receive on manager
    # calls); "" = not enforced (development).
    internal_token: str = ""
    # Domain admins may not read agents at all (AgentService is then for
    # superadmins and monitors only).
    hide_agents: bool = False


class SessionSchedulerConfig(BaseModel):
    """The session scheduler and lifecycle sweeper (per-group policies live in the DB)."""

    # Run the scheduling loop and sweeper in this process.
    enabled: bool = True
    # Rounds run on every enqueue/release wake-up and at least this often.
    tick_seconds: float = Field(default=1.0, gt=0, le=60)
    # Groups without strict_fifo in their scheduler_opts: may smaller sessions
    # overtake one that does not fit (False: backfill)?
    strict_fifo: bool = False
    max_sessions_per_round: int = Field(default=1000, ge=1, le=100_000)
    # How often timeouts of transitional statuses are checked.
    sweep_seconds: float = Field(default=5.0, gt=0, le=300)


class RegistryConfig(BaseModel):
    """A container registry images are scanned from and pulled from (etcd
    config/docker/registry/<name> upstream). The name is the registry part of
    canonical image names ("cr.backend.ai", "127.0.0.1:5000")."""

    url: str
    # Only "docker" (the Registry HTTP API v2) is scanned.
    type: str = "docker"
    # Projects (namespaces) to scan; empty: every repository the catalog lists.
    project: list[str] = Field(default_factory=list)
    username: str = ""
    password: str = ""
    ssl_verify: bool = True

    @field_validator("project", mode="before")
    @classmethod
    def _split_projects(cls, value: Any) -> Any:
        # Upstream stores the projects as one comma-separated string.
        if isinstance(value, str):
            return [part.strip() for part in value.split(",") if part.strip()]
        return value


class StorageProxyConfig(BaseModel):
    """One storage proxy (etcd volumes/proxies/<name> upstream)."""

    # host:port of the proxy's manager-facing StorageService (6022).
    manager_address: str
    # FileService address handed to clients in transfer tickets (the Envoy
    # gateway or the proxy's 6021); "": the address the proxy reports.
    client_address: str = ""
    # Shared secret sent as "x-bai-storage-auth-token".
    secret: str = ""
    # Seconds a StorageService call may take (clones run without a deadline).
    call_timeout: float = Field(default=30.0, gt=0)


class StorageConfig(BaseModel):
    """Storage proxies and the default vfolder host."""

    proxies: dict[str, StorageProxyConfig] = Field(default_factory=dict)
    # "<proxy>:<volume>" used when CreateVFolder names no host.
    default_host: str = ""


class AppProxyConfig(BaseModel):
    """The app-proxy Coordinator that session apps are registered with."""

    # host:port of the Coordinator's CircuitService; "": apps are unavailable.
    coordinator_address: str = ""
    # Shared secret sent as "x-bai-internal-token".
    internal_token: str = ""
    # How long an app token handed to a user is valid.
    token_ttl_seconds: float = Field(default=3600.0, gt=0, le=30 * 86400)
    # Seconds a Coordinator call may take.
    call_timeout: float = Field(default=10.0, gt=0)
    # How long an app gets to answer on its port after the agent starts it.
    start_timeout: float = Field(default=60.0, gt=0)


class ManagerConfig(ComponentConfig):
    grpc_port: int = Field(default=8091, ge=0, le=65535)
    metrics_port: int = Field(default=18080, ge=0, le=65535)
    db: DatabaseConfig = DatabaseConfig()
    redis: RedisConfig = RedisConfig()
    auth: AuthConfig = AuthConfig()
    # Addresses Prometheus should scrape, published at /metrics/service_discovery
    # (the manager adds itself; agents and other components register later).
    scrape_targets: dict[str, list[str]] = Field(default_factory=dict)
    agent: AgentConfig = AgentConfig()
    scheduler: SessionSchedulerConfig = SessionSchedulerConfig()
    registries: dict[str, RegistryConfig] = Field(default_factory=dict)
    storage: StorageConfig = StorageConfig()
    app_proxy: AppProxyConfig = AppProxyConfig()
