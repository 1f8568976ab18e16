"""Pure functions from circuits to Envoy listeners and clusters (xDS v3 as plain dicts).

Per circuit: one cluster (its routes as weighted endpoints, with active health
checks and no panic routing, so a dead app answers 503 at once) and, in port
mode, one listener on the circuit's port. A wildcard worker has one listener
with a virtual host per circuit subdomain.
The auth filters are in `bai.coordinator.xds.filters`.
"""

from __future__ import annotations

import ipaddress
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

from bai.coordinator.records import H2_PROTOCOLS, Circuit, Route, Worker
from bai.coordinator.xds.filters import (
    JWT_FILTER,
    T,
    cookie_provider,
    cookie_requirement,
    ext_authz,
    hcm,
    rbac_policy,
)


@dataclass(frozen=True)
class RenderSettings:
    listen_address: str
    health_interval_seconds: float
    unhealthy_threshold: int
    connect_timeout_seconds: float
    # HS256 key of the circuit cookies (derived from the app-token secret).
    cookie_key: bytes


def _seconds(value: float) -> str:
    return f"{value:.3f}s"


def _address(host: str, port: int) -> dict[str, Any]:
    return {"socket_address": {"address": host, "port_value": port}}


def _weights(routes: Iterable[Route]) -> list[tuple[Route, int]]:
    """Envoy weights (>= 1) from traffic ratios; ratio 0 drops a route unless all are 0."""
    routes = list(routes)
    if all(r.traffic_ratio <= 0 for r in routes):
        return [(r, 1) for r in routes]
    return [(r, max(1, round(r.traffic_ratio * 1000))) for r in routes if r.traffic_ratio > 0]


def cluster_name(circuit: Circuit) -> str:
    return f"circuit_{circuit.id.hex}"


def circuit_cluster(circuit: Circuit, s: RenderSettings) -> dict[str, Any]:
    endpoints = [
        {
            "endpoint": {"address": _address(r.kernel_host, r.kernel_port)},
            "load_balancing_weight": w,
        }
        for r, w in sorted(_weights(circuit.routes), key=lambda rw: rw[0].route_id)
    ]
    hosts_are_names = any(not is_ip_literal(r.kernel_host) for r in circuit.routes)
    check: dict[str, Any] = (
        {"tcp_health_check": {}}
        if circuit.is_tcp or circuit.protocol in H2_PROTOCOLS
        else {
            # Any HTTP answer means the app is alive; only silence or refusal is down.
            "http_health_check": {"path": "/", "expected_statuses": [{"start": 100, "end": 600}]}
        }
    )
    interval = _seconds(s.health_interval_seconds)
    cluster: dict[str, Any] = {
        "@type": T + "config.cluster.v3.Cluster",
        "name": cluster_name(circuit),
        "type": "STRICT_DNS" if hosts_are_names else "STATIC",
        "connect_timeout": _seconds(s.connect_timeout_seconds),
        "lb_policy": "ROUND_ROBIN",
        "load_assignment": {
            "cluster_name": cluster_name(circuit),
            "endpoints": [{"lb_endpoints": endpoints}],
        },
        "health_checks": [
            {
                "timeout": interval,
                "interval": interval,
                "no_traffic_interval": interval,
                "unhealthy_threshold": s.unhealthy_threshold,
                "healthy_threshold": 1,
                **check,
            }
        ],
        # No panic routing: with every backend down, answer 503 instead of trying them.
        "common_lb_config": {"healthy_panic_threshold": {"value": 0}},
    }
    if circuit.protocol in H2_PROTOCOLS:
        cluster["typed_extension_protocol_options"] = {
            "envoy.extensions.upstreams.http.v3.HttpProtocolOptions": {
                "@type": T + "extensions.upstreams.http.v3.HttpProtocolOptions",
                "explicit_http_config": {"http2_protocol_options": {}},
            }
        }
    return cluster


def is_ip_literal(host: str) -> bool:
    """IP literals make STATIC clusters; names need STRICT_DNS."""
    try:
        ipaddress.ip_address(host)
    except ValueError:
        return False
    return True


def _route_action(circuit: Circuit) -> dict[str, Any]:
    # Apps stream (notebooks, terminals, server-sent events): no overall timeout.
    return {"cluster": cluster_name(circuit), "timeout": "0s", "idle_timeout": "3600s"}


def _port_http_filters(circuit: Circuit, s: RenderSettings) -> list[dict[str, Any]]:
    filters: list[dict[str, Any]] = []
    if circuit.allowed_client_ips:
        filters.append(
            {
                "name": "envoy.filters.http.rbac",
                "typed_config": {
                    "@type": T + "extensions.filters.http.rbac.v3.RBAC",
                    "rules": rbac_policy(circuit),
                },
            }
        )
    if not circuit.open_to_public:
        filters.append(
            {
                "name": JWT_FILTER,
                "typed_config": {
                    "@type": T + "extensions.filters.http.jwt_authn.v3.JwtAuthentication",
                    "providers": {"cookie": cookie_provider(circuit, s.cookie_key)},
                    "rules": [{"match": {"prefix": "/"}, "requires": cookie_requirement("cookie")}],
                },
            }
        )
        filters.append(ext_authz(str(circuit.id)))
    return filters


def port_listener(circuit: Circuit, s: RenderSettings) -> dict[str, Any]:
    name = f"circuit_{circuit.id.hex}"
    network_filters: list[dict[str, Any]]
    if circuit.is_tcp:
        network_filters = []
        if circuit.allowed_client_ips:
            network_filters.append(
                {
                    "name": "envoy.filters.network.rbac",
                    "typed_config": {
                        "@type": T + "extensions.filters.network.rbac.v3.RBAC",
                        "stat_prefix": name,
                        "rules": rbac_policy(circuit),
                    },
                }
            )
        network_filters.append(
            {
                "name": "envoy.filters.network.tcp_proxy",
                "typed_config": {
                    "@type": T + "extensions.filters.network.tcp_proxy.v3.TcpProxy",
                    "stat_prefix": name,
                    "cluster": cluster_name(circuit),
                },
            }
        )
    else:
        vhost = {
            "name": name,
            "domains": ["*"],
            "routes": [{"match": {"prefix": "/"}, "route": _route_action(circuit)}],
        }
        network_filters = [hcm(name, [vhost], _port_http_filters(circuit, s))]
    assert circuit.port is not None
    return {
        "@type": T + "config.listener.v3.Listener",
        "name": name,
        "address": _address(s.listen_address, circuit.port),
        "filter_chains": [{"filters": network_filters}],
    }


def wildcard_listener(worker: Worker, circuits: list[Circuit], s: RenderSettings) -> dict[str, Any]:
    """One listener; each circuit a virtual host `<subdomain>.<domain>` with its own checks."""
    providers: dict[str, Any] = {}
    vhosts: list[dict[str, Any]] = []
    for circuit in sorted(circuits, key=lambda c: c.subdomain):
        host = f"{circuit.subdomain}.{worker.wildcard_domain}"
        per_filter: dict[str, Any] = {}
        if circuit.allowed_client_ips:
            per_filter["envoy.filters.http.rbac"] = {
                "@type": T + "extensions.filters.http.rbac.v3.RBACPerRoute",
                "rbac": {"rules": rbac_policy(circuit)},
            }
        if circuit.open_to_public:
            per_filter["envoy.filters.http.ext_authz"] = {
                "@type": T + "extensions.filters.http.ext_authz.v3.ExtAuthzPerRoute",
                "disabled": True,
            }
        else:
            providers[circuit.id.hex] = cookie_provider(circuit, s.cookie_key)
            per_filter[JWT_FILTER] = {
                "@type": T + "extensions.filters.http.jwt_authn.v3.PerRouteConfig",
                "requirement_name": circuit.id.hex,
            }
        vhosts.append(
            {
                "name": host,
                "domains": [host, f"{host}:*"],
                "routes": [{"match": {"prefix": "/"}, "route": _route_action(circuit)}],
                "typed_per_filter_config": per_filter,
            }
        )
    filters: list[dict[str, Any]] = [
        {
            "name": "envoy.filters.http.rbac",
            "typed_config": {"@type": T + "extensions.filters.http.rbac.v3.RBAC"},
        },
        {
            "name": JWT_FILTER,
            "typed_config": {
                "@type": T + "extensions.filters.http.jwt_authn.v3.JwtAuthentication",
                "providers": providers,
                "requirement_map": {name: cookie_requirement(name) for name in providers},
            },
        },
        ext_authz(None),
    ]
    return {
        "@type": T + "config.listener.v3.Listener",
        "name": "wildcard",
        "address": _address(s.listen_address, worker.listen_port),
        "filter_chains": [{"filters": [hcm("wildcard", vhosts, filters)]}],
    }


def worker_resources(
    worker: Worker, circuits: Iterable[Circuit], s: RenderSettings
) -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
    """(listeners, clusters) of one worker, in a stable order (equal input, equal files)."""
    mine = sorted((c for c in circuits if c.worker == worker.authority), key=lambda c: c.id.hex)
    clusters = [circuit_cluster(c, s) for c in mine]
    listeners = [port_listener(c, s) for c in mine if c.frontend_mode == "port"]
    if worker.frontend_mode == "wildcard":
        listeners.append(
            wildcard_listener(worker, [c for c in mine if c.frontend_mode == "wildcard"], s)
        )
    return listeners, clusters
