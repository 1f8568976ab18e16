"""The bootstrap of an app-proxy Envoy (a worker): admin, the ext_authz cluster and
filesystem xDS pointing at the worker's directory."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from bai.coordinator.xds.files import CDS_FILE, LDS_FILE, ensure_worker_files, worker_directory
from bai.coordinator.xds.filters import AUTHZ_CLUSTER
from bai.coordinator.xds.resources import is_ip_literal
from bai.gateway import gateway_process_argv


def _path_source(directory: Path, name: str) -> dict[str, Any]:
    return {
        "resource_api_version": "V3",
        "path_config_source": {
            "path": str(directory / name),
            "watched_directory": {"path": str(directory)},
        },
    }


def app_proxy_bootstrap(
    authority: str,
    xds_root: Path,
    authz_addr: tuple[str, int],
    admin_port: int,
    admin_address: str = "127.0.0.1",
) -> dict[str, Any]:
    """Bootstrap for the worker `authority`; creates its xDS directory and empty files."""
    directory = worker_directory(xds_root.resolve(), authority)
    ensure_worker_files(directory)
    host, port = authz_addr
    return {
        "node": {"id": authority, "cluster": "bai-app-proxy"},
        "admin": {
            "address": {"socket_address": {"address": admin_address, "port_value": admin_port}}
        },
        "dynamic_resources": {
            "cds_config": _path_source(directory, CDS_FILE),
            "lds_config": _path_source(directory, LDS_FILE),
        },
        "static_resources": {
            "clusters": [
                {
                    "name": AUTHZ_CLUSTER,
                    "type": "STATIC" if is_ip_literal(host) else "STRICT_DNS",
                    "connect_timeout": "1s",
                    "load_assignment": {
                        "cluster_name": AUTHZ_CLUSTER,
                        "endpoints": [
                            {
                                "lb_endpoints": [
                                    {
                                        "endpoint": {
                                            "address": {
                                                "socket_address": {
                                                    "address": host,
                                                    "port_value": port,
                                                }
                                            }
                                        }
                                    }
                                ]
                            }
                        ],
                    },
                }
            ]
        },
        "overload_manager": {
            "resource_monitors": [
                {
                    "name": "envoy.resource_monitors.global_downstream_max_connections",
                    "typed_config": {
                        "@type": "type.googleapis.com/envoy.extensions.resource_monitors."
                        "downstream_connections.v3.DownstreamConnectionsConfig",
                        "max_active_downstream_connections": 50000,
                    },
                }
            ]
        },
    }


def render_app_proxy_bootstrap(
    authority: str, xds_root: Path, authz_addr: tuple[str, int], admin_port: int
) -> str:
    return (
        json.dumps(app_proxy_bootstrap(authority, xds_root, authz_addr, admin_port), indent=2)
        + "\n"
    )


def app_proxy_process_argv(config_path: Path, log_level: str = "info") -> list[str]:
    """Command line of an app-proxy Envoy: a removed circuit's open connections (a
    notebook's WebSocket) are closed within a second instead of Envoy's 10-minute drain."""
    argv = gateway_process_argv(config_path, log_level=log_level)
    return [*argv, "--drain-time-s", "1", "--drain-strategy", "immediate"]
