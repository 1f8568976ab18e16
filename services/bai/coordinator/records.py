"""The coordinator's domain records: workers, circuits and their routes (no gRPC, no SQL).

Enumerations are plain lower-case strings here and in the database; the
servicers translate them to and from the contract's enums.
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass, field
from datetime import datetime

# Protocols served by an HTTP connection manager (HTTP/1.1 with WebSocket
# upgrades, or HTTP/2 to the app) and those passed through as raw TCP.
HTTP_PROTOCOLS = frozenset({"http", "preopen"})
H2_PROTOCOLS = frozenset({"h2", "grpc"})
TCP_PROTOCOLS = frozenset({"tcp", "vnc", "rdp"})
PROTOCOLS = HTTP_PROTOCOLS | H2_PROTOCOLS | TCP_PROTOCOLS
APP_MODES = frozenset({"interactive", "inference"})
FRONTEND_MODES = frozenset({"port", "wildcard"})
WORKER_STATUSES = frozenset({"alive", "lost", "terminated"})


@dataclass(frozen=True)
class Route:
    route_id: str
    kernel_host: str
    kernel_port: int
    protocol: str = "http"
    session_id: str = ""
    session_name: str = ""
    # 0 on every route means equal weights; otherwise 0 gets no traffic.
    traffic_ratio: float = 0.0


@dataclass(frozen=True)
class Worker:
    authority: str
    frontend_mode: str
    hostname: str
    use_tls: bool = False
    port_start: int = 0
    port_end: int = 0
    wildcard_domain: str = ""
    available_slots: int = 0
    status: str = "alive"
    last_heartbeat_at: datetime | None = None
    created_at: datetime | None = None

    @property
    def listen_port(self) -> int:
        """The one port of a wildcard worker: the port part of its authority."""
        _, _, port = self.authority.rpartition(":")
        return int(port) if port.isdigit() else (443 if self.use_tls else 80)


@dataclass(frozen=True)
class Circuit:
    id: uuid.UUID
    request_id: str
    app: str
    protocol: str
    app_mode: str
    frontend_mode: str
    worker: str
    port: int | None = None
    subdomain: str = ""
    envs: dict[str, str] = field(default_factory=dict)
    arguments: dict[str, str] = field(default_factory=dict)
    open_to_public: bool = False
    allowed_client_ips: tuple[str, ...] = ()
    user_id: str = ""
    endpoint_id: str = ""
    runtime_variant: str = ""
    session_ids: tuple[str, ...] = ()
    routes: tuple[Route, ...] = ()
    # Digest of the create request, to tell a retry from a conflicting reuse.
    request_digest: str = ""
    created_at: datetime | None = None
    updated_at: datetime | None = None
    # When the coordinator removes it; None: never.
    expires_at: datetime | None = None

    @property
    def is_tcp(self) -> bool:
        return self.protocol in TCP_PROTOCOLS


def circuit_url(circuit: Circuit, worker: Worker) -> str:
    """The address clients open: the worker's port, or the circuit's subdomain."""
    if circuit.is_tcp:
        return f"tcp://{worker.hostname}:{circuit.port}"
    scheme = "https" if worker.use_tls else "http"
    if circuit.frontend_mode == "port":
        return f"{scheme}://{worker.hostname}:{circuit.port}/"
    port = worker.listen_port
    default = 443 if worker.use_tls else 80
    suffix = "" if port == default else f":{port}"
    return f"{scheme}://{circuit.subdomain}.{worker.wildcard_domain}{suffix}/"
