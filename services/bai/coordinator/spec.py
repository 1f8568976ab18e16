"""What a caller asks for (create a circuit, replace routes, register a worker), validated."""

from __future__ import annotations

import hashlib
import ipaddress
import json
import math
import uuid
from dataclasses import asdict, dataclass, field

from bai.common.errors import FieldViolation, InvalidArgument
from bai.coordinator.expiry import MAX_CIRCUIT_TTL_SECONDS
from bai.coordinator.records import APP_MODES, FRONTEND_MODES, PROTOCOLS, Route, Worker

MAX_TOKEN_TTL_SECONDS = 30 * 86400


@dataclass(frozen=True)
class CircuitSpec:
    request_id: str
    app: str
    protocol: str
    app_mode: str
    # None: any mode an ALIVE worker offers.
    frontend_mode: str | None
    routes: tuple[Route, ...]
    envs: dict[str, str] = field(default_factory=dict)
    arguments: dict[str, str] = field(default_factory=dict)
    open_to_public: bool = False
    allowed_client_ips: tuple[str, ...] = ()
    user_id: str = ""
    endpoint_id: str = ""
    runtime_variant: str = ""
    session_ids: tuple[str, ...] = ()
    # None or 0: the circuit never expires.
    ttl_seconds: float | None = None

    def digest(self) -> str:
        """Same request, same digest: tells a retry from another request reusing the id."""
        return hashlib.sha256(json.dumps(asdict(self), sort_keys=True).encode()).hexdigest()


def route_violations(routes: tuple[Route, ...], name: str = "routes") -> list[FieldViolation]:
    out: list[FieldViolation] = []
    seen: set[str] = set()
    for i, r in enumerate(routes):
        where = f"{name}[{i}]"
        if not r.route_id:
            out.append(FieldViolation(f"{where}.route_id", "is required"))
        elif r.route_id in seen:
            out.append(FieldViolation(f"{where}.route_id", "is used by another route"))
        seen.add(r.route_id)
        if not r.kernel_host or len(r.kernel_host) > 255 or any(c.isspace() for c in r.kernel_host):
            out.append(FieldViolation(f"{where}.kernel_host", "must be a host name or address"))
        if not 1 <= r.kernel_port <= 65535:
            out.append(FieldViolation(f"{where}.kernel_port", "must be 1-65535"))
        if not math.isfinite(r.traffic_ratio) or r.traffic_ratio < 0:
            out.append(FieldViolation(f"{where}.traffic_ratio", "must be a finite number >= 0"))
        if r.protocol not in PROTOCOLS:
            out.append(FieldViolation(f"{where}.protocol", "is not a known protocol"))
    return out


def validate_circuit_spec(spec: CircuitSpec) -> None:
    out: list[FieldViolation] = []
    try:
        uuid.UUID(spec.request_id)
    except ValueError:
        out.append(FieldViolation("request_id", "must be a UUID"))
    if not spec.app or len(spec.app) > 255:
        out.append(FieldViolation("app", "must be 1-255 characters"))
    if spec.protocol not in PROTOCOLS:
        out.append(FieldViolation("protocol", "is not a known protocol"))
    if spec.app_mode not in APP_MODES:
        out.append(FieldViolation("app_mode", "must be interactive or inference"))
    if spec.frontend_mode is not None and spec.frontend_mode not in FRONTEND_MODES:
        out.append(FieldViolation("frontend_mode", "must be port or wildcard"))
    if not spec.routes:
        out.append(FieldViolation("routes", "at least one route is required"))
    out += route_violations(spec.routes)
    for i, cidr in enumerate(spec.allowed_client_ips):
        try:
            ipaddress.ip_network(cidr, strict=False)
        except ValueError:
            out.append(FieldViolation(f"allowed_client_ips[{i}]", "is not an address or CIDR"))
    for name, value in (
        ("user_id", spec.user_id),
        ("endpoint_id", spec.endpoint_id),
        ("runtime_variant", spec.runtime_variant),
    ):
        if len(value) > 64:
            out.append(FieldViolation(name, "must be at most 64 characters"))
    if spec.ttl_seconds is not None and not 0 <= spec.ttl_seconds <= MAX_CIRCUIT_TTL_SECONDS:
        out.append(FieldViolation("ttl", "must be zero (no expiry) or positive, at most 30 days"))
    if spec.app_mode == "interactive" and not spec.open_to_public and not spec.user_id:
        out.append(FieldViolation("user_id", "is required for a private interactive circuit"))
    if out:
        raise InvalidArgument(out)


def parse_circuit_id(value: str, name: str = "circuit_id") -> uuid.UUID:
    try:
        return uuid.UUID(value)
    except ValueError as exc:
        raise InvalidArgument.field(name, "must be a UUID") from exc


def validate_worker(worker: Worker) -> None:
    out: list[FieldViolation] = []
    host, sep, port = worker.authority.rpartition(":")
    if not sep or not host or not port.isdigit() or not 1 <= int(port) <= 65535:
        out.append(FieldViolation("authority", 'must be "host:port"'))
    if worker.frontend_mode not in FRONTEND_MODES:
        out.append(FieldViolation("frontend_mode", "must be port or wildcard"))
    if not worker.hostname:
        out.append(FieldViolation("hostname", "is required"))
    if worker.frontend_mode == "port" and not (1 <= worker.port_start <= worker.port_end <= 65535):
        out.append(FieldViolation("port_range", "must be a non-empty range within 1-65535"))
    if worker.frontend_mode == "wildcard":
        if not worker.wildcard_domain:
            out.append(FieldViolation("wildcard_domain", "is required in WILDCARD mode"))
        if worker.available_slots <= 0:
            out.append(FieldViolation("available_slots", "must be positive in WILDCARD mode"))
    if out:
        raise InvalidArgument(out)
