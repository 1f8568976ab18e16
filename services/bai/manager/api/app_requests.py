"""Syntactic checks of the SessionService app RPCs (StartService and friends)."""

from __future__ import annotations

import ipaddress
import re

from bai.api.manager.v1 import session_pb2 as pb
from bai.manager.api.session_requests import environ_vars
from bai.manager.apps.session_apps import AppRequest
from bai.manager.validation import Violations

SERVICE_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,63}$")
MAX_ARGUMENTS = 64
MAX_CLIENT_IPS = 64


def service_name(v: Violations, value: str) -> None:
    if not SERVICE_NAME.match(value):
        v.add("service", "must be a service port name (1-64 of [A-Za-z0-9._-])")


def parse_start(request: pb.StartServiceRequest) -> AppRequest:
    v = Violations()
    service_name(v, request.service)
    if not 0 <= request.port <= 65535:
        v.add("port", "must be a container port (1-65535), or 0 for the first")
    envs = environ_vars(v, request.envs, "envs")
    if len(request.arguments) > MAX_ARGUMENTS:
        v.add("arguments", f"must have at most {MAX_ARGUMENTS} entries")
    for key, value in request.arguments.items():
        v.text(f"arguments[{key[:40]!r}]", key, 128)
        v.text(f"arguments[{key[:40]!r}]", value, 4096)
    if len(request.allowed_client_ips) > MAX_CLIENT_IPS:
        v.add("allowed_client_ips", f"must have at most {MAX_CLIENT_IPS} entries")
    for i, item in enumerate(request.allowed_client_ips[:MAX_CLIENT_IPS]):
        try:
            ipaddress.ip_network(item, strict=False)
        except ValueError:
            v.add(f"allowed_client_ips[{i}]", "must be an IP address or CIDR")
    v.raise_if_any()
    return AppRequest(
        service=request.service,
        port=request.port,
        envs=envs,
        arguments=dict(request.arguments),
        open_to_public=request.open_to_public,
        allowed_client_ips=tuple(request.allowed_client_ips),
    )


def parse_service(request: pb.ShutdownServiceRequest) -> str:
    v = Violations()
    service_name(v, request.service)
    v.raise_if_any()
    return request.service
