"""Where the local stack keeps its state and which ports it uses."""

from __future__ import annotations

import json
import os
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path

HOST = "127.0.0.1"

#: Development defaults, as in the seed (DESIGN.md, "Components and ports").
DEFAULT_PORTS: Mapping[str, int] = {
    "postgres": 8101,
    "redis": 8111,
    "etcd": 8121,
    "etcd-peer": 8122,
    "prometheus": 9090,
    # The platform itself (bai.stack.platform).
    "envoy": 8090,
    "envoy-admin": 9901,
    "manager": 8091,
    "manager-metrics": 18080,
    "storage": 6021,
    "storage-manager": 6022,
    "storage-http": 6023,
    "storage-metrics": 16023,
    "agent": 6011,
    "agent-metrics": 6003,
    "coordinator": 10200,
    "coordinator-metrics": 10201,
    "coordinator-authz": 10202,
    "app-proxy-admin": 10203,
    # First of the app proxy's frontend ports (APP_PROXY_PORTS of them).
    "app-proxy": 10205,
}

#: How many frontend ports (one per app in port mode) the stack's app proxy has.
APP_PROXY_PORTS = 96

#: The manager serves Prometheus HTTP service discovery JSON here.
DEFAULT_SERVICE_DISCOVERY_URL = "http://127.0.0.1:18080/metrics/service_discovery"

STATE_DIR_ENV = "BAI_STATE_DIR"
#: A file that marks a directory as a stack state dir (``reset`` refuses others).
MARKER_FILE = ".bai-stack"
#: Ports the last ``up`` used, so later commands find the processes again.
PORTS_FILE = "ports.json"

PG_USER = "bai"
PG_PASSWORD = "bai"
PG_DATABASE = "bai"


def repo_root() -> Path:
    """The repository root (the directory holding pyproject.toml), else the cwd."""
    here = Path(__file__).resolve()
    for parent in here.parents:
        if (parent / "pyproject.toml").is_file() and (parent / "services").is_dir():
            return parent
    return Path.cwd()


def default_state_dir() -> Path:
    """``$BAI_STATE_DIR``, else ``./state`` at the repository root."""
    env = os.environ.get(STATE_DIR_ENV)
    if env:
        return Path(env).expanduser().resolve()
    return repo_root() / "state"


@dataclass(frozen=True)
class StackConfig:
    """Settings shared by every component of one stack instance.

    ``ephemeral`` marks a throwaway (test) instance: no fsync, no persistence.
    """

    state_dir: Path
    ports: Mapping[str, int] = field(default_factory=lambda: dict(DEFAULT_PORTS))
    host: str = HOST
    ephemeral: bool = False
    service_discovery_url: str = DEFAULT_SERVICE_DISCOVERY_URL

    @classmethod
    def load(
        cls,
        state_dir: Path | None = None,
        ports: Mapping[str, int] | None = None,
        *,
        ephemeral: bool = False,
        service_discovery_url: str = DEFAULT_SERVICE_DISCOVERY_URL,
    ) -> StackConfig:
        """Defaults, overridden by the ports recorded in the state dir, then by ``ports``."""
        root = (state_dir or default_state_dir()).expanduser().resolve()
        merged = dict(DEFAULT_PORTS)
        merged.update(read_recorded_ports(root))
        merged.update(ports or {})
        return cls(
            state_dir=root,
            ports=merged,
            ephemeral=ephemeral,
            service_discovery_url=service_discovery_url,
        )

    def port(self, name: str) -> int:
        try:
            return self.ports[name]
        except KeyError:
            return DEFAULT_PORTS[name]

    # Layout of the state dir.
    def component_dir(self, name: str) -> Path:
        return self.state_dir / name

    @property
    def run_dir(self) -> Path:
        return self.state_dir / "run"

    @property
    def log_dir(self) -> Path:
        return self.state_dir / "log"

    def pid_file(self, name: str) -> Path:
        return self.run_dir / f"{name}.pid"

    def meta_file(self, name: str) -> Path:
        return self.run_dir / f"{name}.json"

    def log_file(self, name: str) -> Path:
        return self.log_dir / f"{name}.log"

    # Endpoints clients use.
    @property
    def pg_dsn(self) -> str:
        """SQLAlchemy URL for asyncpg."""
        return (
            f"postgresql+asyncpg://{PG_USER}:{PG_PASSWORD}@{self.host}:"
            f"{self.port('postgres')}/{PG_DATABASE}"
        )

    @property
    def redis_url(self) -> str:
        return f"redis://{self.host}:{self.port('redis')}/0"

    @property
    def etcd_endpoint(self) -> str:
        """``host:port`` of the etcd client URL."""
        return f"{self.host}:{self.port('etcd')}"

    @property
    def prometheus_url(self) -> str:
        return f"http://{self.host}:{self.port('prometheus')}"


def read_recorded_ports(state_dir: Path) -> dict[str, int]:
    try:
        data = json.loads((state_dir / PORTS_FILE).read_text())
    except (OSError, ValueError):
        return {}
    if not isinstance(data, dict):
        return {}
    return {str(k): int(v) for k, v in data.items() if isinstance(v, int)}


def record_ports(config: StackConfig) -> None:
    config.state_dir.mkdir(parents=True, exist_ok=True)
    path = config.state_dir / PORTS_FILE
    tmp = path.with_suffix(".tmp")
    tmp.write_text(json.dumps(dict(config.ports), indent=2, sort_keys=True) + "\n")
    tmp.replace(path)
