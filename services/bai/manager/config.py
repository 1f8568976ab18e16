"""Manager configuration (TOML file, BAI_MANAGER__* environment, etcd global)."""

from __future__ import annotations

from pydantic import BaseModel, Field

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


class ManagerConfig(ComponentConfig):
    grpc_port: int = Field(default=8091, ge=0, le=65535)
    metrics_port: int = Field(default=18080, ge=0, le=65535)
    db: DatabaseConfig = DatabaseConfig()
    redis: RedisConfig = RedisConfig()
    auth: AuthConfig = AuthConfig()
    # Addresses Prometheus should scrape, published at /metrics/service_discovery
    # (the manager adds itself; agents and other components register later).
    scrape_targets: dict[str, list[str]] = Field(default_factory=dict)
