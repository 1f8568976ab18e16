"""Route health as the workers' Envoys see it (their active health checks), read from the
admin /clusters of each worker whose admin address is known (the coordinator's local
workers; workers registered over gRPC publish none, so their routes stay unprobed)."""

from __future__ import annotations

import logging
from typing import Any

import aiohttp

from bai.coordinator.records import Circuit, Route
from bai.coordinator.xds.resources import cluster_name

log = logging.getLogger(__name__)

Hosts = dict[tuple[str, int], bool]


def parse_clusters(body: dict[str, Any]) -> dict[str, Hosts]:
    """{cluster: {(address, port): passes its health checks}} from /clusters?format=json."""
    out: dict[str, Hosts] = {}
    for cluster in body.get("cluster_statuses", []):
        hosts: Hosts = {}
        for host in cluster.get("host_statuses", []):
            sock = host.get("address", {}).get("socket_address", {})
            status = host.get("health_status", {})
            healthy = not status.get("failed_active_health_check", False) and status.get(
                "eds_health_status", "HEALTHY"
            ) in ("HEALTHY", "UNKNOWN")
            hosts[(sock.get("address", ""), int(sock.get("port_value", 0)))] = healthy
        out[str(cluster.get("name", ""))] = hosts
    return out


class RouteHealthWatcher:
    def __init__(self, admin_urls: dict[str, str]) -> None:
        self.admin_urls = {k: v.rstrip("/") for k, v in admin_urls.items() if v}
        self._seen: dict[str, dict[str, Hosts]] = {}

    async def poll(self) -> None:
        timeout = aiohttp.ClientTimeout(total=2)
        async with aiohttp.ClientSession(timeout=timeout) as http:
            for authority, url in self.admin_urls.items():
                try:
                    async with http.get(f"{url}/clusters?format=json") as resp:
                        self._seen[authority] = parse_clusters(await resp.json(content_type=None))
                except (aiohttp.ClientError, TimeoutError, ValueError) as exc:
                    # Unknown rather than stale: the routes read as unprobed.
                    self._seen.pop(authority, None)
                    log.debug(
                        "worker admin unreachable", extra={"worker": authority, "error": str(exc)}
                    )

    def of(self, circuit: Circuit, route: Route) -> str | None:
        """ "healthy", "unhealthy", or None (not probed, or not in the cluster: weight 0)."""
        hosts = self._seen.get(circuit.worker, {}).get(cluster_name(circuit))
        if hosts is None:
            return None
        healthy = hosts.get((route.kernel_host, route.kernel_port))
        if healthy is None:
            return None
        return "healthy" if healthy else "unhealthy"
