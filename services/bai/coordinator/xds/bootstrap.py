"""The bootstrap of an app-proxy Envoy (a worker): admin, the ext_authz cluster and
where its listeners and clusters come from: the coordinator's ADS over gRPC (given
its address), or filesystem xDS in the worker's directory."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from bai.common.shared_secret import INTERNAL_TOKEN_HEADER
from bai.coordinator.xds.files import CDS_FILE, LDS_FILE, ensure_worker_files, worker_directory
from bai.coordinator.xds.filters import AUTHZ_CLUSTER
from bai.coordinator.xds.resources import is_ip_literal
from bai.gateway import gateway_process_argv

XDS_CLUSTER = "bai_coordinator_xds"


def _path_source(directory: Path, name: str) -> dict[str, Any]:
    return {
        "resource_api_version": "V3",
        "path_config_source": {
            "path": str(directory / name),
            "watched_directory": {"path": str(directory)},
        },
    }


def _static_cluster(name: str, address: tuple[str, int], http2: bool = False) -> dict[str, Any]:
    host, port = address
    cluster: dict[str, Any] = {
        "name": name,
        "type": "STATIC" if is_ip_literal(host) else "STRICT_DNS",
        "connect_timeout": "1s",
        "load_assignment": {
            "cluster_name": name,
            "endpoints": [
                {
                    "lb_endpoints": [
                        {
                            "endpoint": {
                                "address": {"socket_address": {"address": host, "port_value": port}}
                            }
                        }
                    ]
                }
            ],
        },
    }
    if http2:
        cluster["typed_extension_protocol_options"] = {
            "envoy.extensions.upstreams.http.v3.HttpProtocolOptions": {
                "@type": "type.googleapis.com/envoy.extensions.upstreams.http.v3."
                "HttpProtocolOptions",
                "explicit_http_config": {"http2_protocol_options": {}},
            }
        }
    return cluster


def _ads_sources(internal_token: str) -> dict[str, Any]:
    ads = {"resource_api_version": "V3", "ads": {}}
    service: dict[str, Any] = {"envoy_grpc": {"cluster_name": XDS_CLUSTER}}
    if internal_token:
        service["initial_metadata"] = [{"key": INTERNAL_TOKEN_HEADER, "value": internal_token}]
    return {
        "ads_config": {
            "api_type": "GRPC",
            "transport_api_version": "V3",
            "grpc_services": [service],
            # The node (the worker's authority) names the stream; once is enough.
            "set_node_on_first_message_only": True,
        },
        "cds_config": ads,
        "lds_config": ads,
    }


def app_proxy_bootstrap(
    authority: str,
    xds_root: Path,
    authz_addr: tuple[str, int],
    admin_port: int,
    admin_address: str = "127.0.0.1",
    ads_addr: tuple[str, int] | None = None,
    internal_token: str = "",
) -> dict[str, Any]:
    """Bootstrap for the worker `authority`: over ADS from the coordinator at `ads_addr`
    (showing `internal_token`), else from files (its xDS directory and empty files are
    created)."""
    clusters = [_static_cluster(AUTHZ_CLUSTER, authz_addr)]
    if ads_addr is not None:
        dynamic = _ads_sources(internal_token)
        clusters.append(_static_cluster(XDS_CLUSTER, ads_addr, http2=True))
    else:
        directory = worker_directory(xds_root.resolve(), authority)
        ensure_worker_files(directory)
        dynamic = {
            "cds_config": _path_source(directory, CDS_FILE),
            "lds_config": _path_source(directory, LDS_FILE),
        }
    return {
        "node": {"id": authority, "cluster": "bai-app-proxy"},
        "admin": {
            "address": {"socket_address": {"address": admin_address, "port_value": admin_port}}
        },
        "dynamic_resources": dynamic,
        "static_resources": {"clusters": clusters},
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
    authority: str,
    xds_root: Path,
    authz_addr: tuple[str, int],
    admin_port: int,
    ads_addr: tuple[str, int] | None = None,
    internal_token: str = "",
) -> str:
    bootstrap = app_proxy_bootstrap(
        authority,
        xds_root,
        authz_addr,
        admin_port,
        ads_addr=ads_addr,
        internal_token=internal_token,
    )
    return json.dumps(bootstrap, indent=2) + "\n"


def app_proxy_process_argv(config_path: Path, log_level: str = "info") -> list[str]:
    """Command line of an app-proxy Envoy: a removed circuit's open connections (a
    notebook's WebSocket) are closed within a second instead of Envoy's 10-minute drain."""
    argv = gateway_process_argv(config_path, log_level=log_level)
    return [*argv, "--drain-time-s", "1", "--drain-strategy", "immediate"]
