"""Contract messages to and from the coordinator's records (enums become lower-case names)."""

from __future__ import annotations

from collections.abc import Callable
from datetime import datetime
from typing import Any

from google.protobuf import timestamp_pb2

from bai.api.common.v1 import session_pb2 as common
from bai.api.coordinator.v1 import coordinator_pb2 as pb
from bai.common.errors import InvalidArgument
from bai.coordinator.records import Circuit, Route, Worker, circuit_url
from bai.coordinator.spec import CircuitSpec

_PROTOCOL_PREFIX = "APP_PROTOCOL_"


def _name(enum: Any, prefix: str, value: int, field: str) -> str | None:
    """'http' for APP_PROTOCOL_HTTP; None for the UNSPECIFIED value."""
    if value == 0:
        return None
    try:
        return str(enum.Name(value)).removeprefix(prefix).lower()
    except ValueError as exc:
        raise InvalidArgument.field(field, f"unknown value {value}") from exc


def _value(enum: Any, prefix: str, name: str) -> int:
    return int(enum.Value(prefix + name.upper()))


def protocol_name(value: int, field: str, default: str) -> str:
    return _name(common.AppProtocol, _PROTOCOL_PREFIX, value, field) or default


def frontend_mode_name(value: int, field: str = "frontend_mode") -> str | None:
    return _name(pb.FrontendMode, "FRONTEND_MODE_", value, field)


def worker_status_name(value: int, field: str = "statuses") -> str | None:
    return _name(pb.WorkerStatus, "WORKER_STATUS_", value, field)


def _timestamp(value: datetime | None) -> timestamp_pb2.Timestamp | None:
    if value is None:
        return None
    stamp = timestamp_pb2.Timestamp()
    stamp.FromDatetime(value)
    return stamp


def route_from_proto(r: pb.Route, default_protocol: str, field: str) -> Route:
    return Route(
        route_id=r.route_id,
        kernel_host=r.kernel_host,
        kernel_port=r.kernel_port,
        protocol=protocol_name(r.protocol, f"{field}.protocol", default_protocol),
        session_id=r.session_id,
        session_name=r.session_name,
        traffic_ratio=r.traffic_ratio,
    )


def routes_from_proto(routes: Any, default_protocol: str) -> tuple[Route, ...]:
    return tuple(
        route_from_proto(r, default_protocol, f"routes[{i}]") for i, r in enumerate(routes)
    )


def spec_from_proto(req: pb.CreateCircuitRequest) -> CircuitSpec:
    protocol = protocol_name(req.protocol, "protocol", "http")
    return CircuitSpec(
        request_id=req.request_id,
        app=req.app,
        protocol=protocol,
        app_mode=_name(pb.AppMode, "APP_MODE_", req.app_mode, "app_mode") or "interactive",
        frontend_mode=frontend_mode_name(req.frontend_mode),
        routes=routes_from_proto(req.routes, protocol),
        envs=dict(req.envs),
        arguments=dict(req.arguments),
        open_to_public=req.open_to_public,
        allowed_client_ips=tuple(req.allowed_client_ips),
        user_id=req.user_id,
        endpoint_id=req.endpoint_id,
        runtime_variant=req.runtime_variant,
        session_ids=tuple(req.session_ids),
        ttl_seconds=req.ttl.ToTimedelta().total_seconds() if req.HasField("ttl") else None,
    )


HEALTH = {"healthy": pb.ROUTE_HEALTH_HEALTHY, "unhealthy": pb.ROUTE_HEALTH_UNHEALTHY}
HealthOf = Callable[[Circuit, Route], str | None]


def route_to_proto(r: Route, health: str | None) -> pb.Route:
    return pb.Route(
        route_id=r.route_id,
        session_id=r.session_id,
        session_name=r.session_name,
        kernel_host=r.kernel_host,
        kernel_port=r.kernel_port,
        protocol=_value(common.AppProtocol, _PROTOCOL_PREFIX, r.protocol),  # type: ignore[arg-type]
        traffic_ratio=r.traffic_ratio,
        health=HEALTH.get(health or "", pb.ROUTE_HEALTH_UNSPECIFIED),
    )


def circuit_to_proto(
    c: Circuit, find_worker: Callable[[str], Worker | None], health_of: HealthOf
) -> pb.Circuit:
    worker = find_worker(c.worker)
    return pb.Circuit(
        id=str(c.id),
        app=c.app,
        protocol=_value(common.AppProtocol, _PROTOCOL_PREFIX, c.protocol),  # type: ignore[arg-type]
        app_mode=_value(pb.AppMode, "APP_MODE_", c.app_mode),  # type: ignore[arg-type]
        frontend_mode=_value(pb.FrontendMode, "FRONTEND_MODE_", c.frontend_mode),  # type: ignore[arg-type]
        worker=c.worker,
        port=c.port or 0,
        subdomain=c.subdomain,
        url=circuit_url(c, worker) if worker is not None else "",
        envs=c.envs,
        arguments=c.arguments,
        open_to_public=c.open_to_public,
        allowed_client_ips=list(c.allowed_client_ips),
        user_id=c.user_id,
        endpoint_id=c.endpoint_id,
        runtime_variant=c.runtime_variant,
        session_ids=list(c.session_ids),
        routes=[route_to_proto(r, health_of(c, r)) for r in c.routes],
        created_at=_timestamp(c.created_at),
        updated_at=_timestamp(c.updated_at),
        expires_at=_timestamp(c.expires_at),
    )


def worker_from_proto(req: pb.RegisterWorkerRequest) -> Worker:
    return Worker(
        authority=req.authority,
        frontend_mode=frontend_mode_name(req.frontend_mode) or "",
        hostname=req.hostname,
        use_tls=req.use_tls,
        port_start=req.port_range.start,
        port_end=req.port_range.end,
        wildcard_domain=req.wildcard_domain,
        available_slots=req.available_slots,
    )


def worker_to_proto(w: Worker, occupied: int, capacity: int) -> pb.Worker:
    return pb.Worker(
        authority=w.authority,
        frontend_mode=_value(pb.FrontendMode, "FRONTEND_MODE_", w.frontend_mode),  # type: ignore[arg-type]
        hostname=w.hostname,
        use_tls=w.use_tls,
        port_range=pb.PortRange(start=w.port_start, end=w.port_end),
        wildcard_domain=w.wildcard_domain,
        available_slots=capacity,
        occupied_slots=occupied,
        status=_value(pb.WorkerStatus, "WORKER_STATUS_", w.status),  # type: ignore[arg-type]
        last_heartbeat_at=_timestamp(w.last_heartbeat_at),
        created_at=_timestamp(w.created_at),
    )
