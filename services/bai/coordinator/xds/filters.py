"""Envoy HTTP and network filter configs of the app proxy (xDS v3 as plain dicts).

Auth inside Envoy, so that routes keep serving while the coordinator restarts:
RBAC enforces allowed client IPs; jwt_authn accepts the circuit's cookie (an
HS256 JWT whose audience is the circuit id). Only a request without a valid
cookie goes on to ext_authz (the coordinator), which redeems app tokens.
"""

from __future__ import annotations

import base64
import ipaddress
import json
from collections.abc import Iterable
from typing import Any

from bai.coordinator.records import Circuit

AUTHZ_CLUSTER = "bai_authz"
AUTHZ_PATH_PREFIX = "/authz"
CIRCUIT_HEADER = "x-bai-circuit-id"
PEER_HEADER = "x-bai-peer"
COOKIE_ISSUER = "bai-coordinator"
COOKIE_METADATA_KEY = "bai_cookie"
JWT_FILTER = "envoy.filters.http.jwt_authn"
T = "type.googleapis.com/envoy."
APP_DOWN_PAGE = (
    "<!doctype html><title>App unavailable</title>"
    "<h1>503: the app is down</h1>"
    "<p>The app behind this address is not answering (%RESPONSE_CODE_DETAILS%). "
    "It may have stopped or crashed; restart it from your session.</p>\n"
)


def cookie_name(circuit_id: str) -> str:
    """Per circuit: browsers share cookies between ports of one host."""
    return f"bai_app_{circuit_id.replace('-', '')}"


def _cidr_principals(cidrs: Iterable[str]) -> list[dict[str, Any]]:
    # The TCP peer itself: X-Forwarded-For (client-controlled) never counts.
    principals = []
    for cidr in cidrs:
        net = ipaddress.ip_network(cidr, strict=False)
        principals.append(
            {
                "direct_remote_ip": {
                    "address_prefix": str(net.network_address),
                    "prefix_len": net.prefixlen,
                }
            }
        )
    return principals


def rbac_policy(circuit: Circuit) -> dict[str, Any]:
    return {
        "action": "ALLOW",
        "policies": {
            "allowed-client-ips": {
                "permissions": [{"any": True}],
                "principals": _cidr_principals(circuit.allowed_client_ips),
            }
        },
    }


def _jwks(key: bytes) -> str:
    k = base64.urlsafe_b64encode(key).decode().rstrip("=")
    return json.dumps({"keys": [{"kty": "oct", "alg": "HS256", "k": k}]})


def cookie_provider(circuit: Circuit, key: bytes) -> dict[str, Any]:
    return {
        "issuer": COOKIE_ISSUER,
        "audiences": [str(circuit.id)],
        "from_cookies": [cookie_name(str(circuit.id))],
        "local_jwks": {"inline_string": _jwks(key)},
        "payload_in_metadata": COOKIE_METADATA_KEY,
        "forward": True,
        # A browser sends the same cookie on every request: verify it once.
        "jwt_cache_config": {"jwt_cache_size": 1000},
    }


def cookie_requirement(provider: str) -> dict[str, Any]:
    # Verify the cookie when present; without one, ext_authz decides.
    return {
        "requires_any": {
            "requirements": [{"provider_name": provider}, {"allow_missing_or_failed": {}}]
        }
    }


def ext_authz(circuit_id: str | None) -> dict[str, Any]:
    # The peer address as Envoy saw it (set here, so a client cannot forge it).
    request: dict[str, Any] = {
        "headers_to_add": [
            {"key": PEER_HEADER, "value": "%DOWNSTREAM_REMOTE_ADDRESS_WITHOUT_PORT%"}
        ]
    }
    if circuit_id is not None:
        request["headers_to_add"].append({"key": CIRCUIT_HEADER, "value": circuit_id})
    return {
        "name": "envoy.filters.http.ext_authz",
        "typed_config": {
            "@type": T + "extensions.filters.http.ext_authz.v3.ExtAuthz",
            "transport_api_version": "V3",
            "http_service": {
                "server_uri": {
                    "uri": "http://bai-authz",
                    "cluster": AUTHZ_CLUSTER,
                    "timeout": "2s",
                },
                "path_prefix": AUTHZ_PATH_PREFIX,
                "authorization_request": request,
            },
            # Host, path and authorization go by default; the client's own
            # x-bai-* headers do not (the two above are set by Envoy).
            "allowed_headers": {"patterns": [{"exact": "cookie"}]},
            # A request whose cookie jwt_authn verified does not reach the coordinator.
            "filter_enabled_metadata": {
                "filter": JWT_FILTER,
                "path": [{"key": COOKIE_METADATA_KEY}],
                "value": {"present_match": True},
                "invert": True,
            },
            "status_on_error": {"code": 503},
            "failure_mode_allow": False,
        },
    }


def router() -> dict[str, Any]:
    return {
        "name": "envoy.filters.http.router",
        "typed_config": {"@type": T + "extensions.filters.http.router.v3.Router"},
    }


def local_reply() -> dict[str, Any]:
    down = {"response_flag_filter": {"flags": ["UH", "UF", "URX", "NC", "UO"]}}
    return {
        "mappers": [
            {
                "filter": down,
                "status_code": 503,
                "body_format_override": {
                    "text_format_source": {"inline_string": APP_DOWN_PAGE},
                    "content_type": "text/html; charset=utf-8",
                },
            }
        ]
    }


def hcm(
    stat_prefix: str, virtual_hosts: list[dict[str, Any]], filters: list[dict[str, Any]]
) -> dict[str, Any]:
    return {
        "name": "envoy.filters.network.http_connection_manager",
        "typed_config": {
            "@type": T
            + "extensions.filters.network.http_connection_manager.v3.HttpConnectionManager",
            "stat_prefix": stat_prefix,
            "codec_type": "AUTO",
            # Saves a UUID per request; apps do not read x-request-id.
            "generate_request_id": False,
            "use_remote_address": True,
            "upgrade_configs": [{"upgrade_type": "websocket"}],
            "route_config": {
                "name": stat_prefix,
                "validate_clusters": False,
                "virtual_hosts": virtual_hosts,
            },
            "http_filters": [*filters, router()],
            "local_reply_config": local_reply(),
        },
    }
