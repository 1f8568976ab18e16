"""Envoy gateway: the HTTP front door (gRPC, grpc-web, REST/JSON) on port 8090."""

from bai.gateway.config import (
    DEFAULT_DESCRIPTOR,
    gateway_config,
    render_default_config,
    render_gateway_config,
    services_in_descriptor,
)
from bai.gateway.process import envoy_binary, gateway_process_argv

__all__ = [
    "DEFAULT_DESCRIPTOR",
    "envoy_binary",
    "gateway_config",
    "gateway_process_argv",
    "render_default_config",
    "render_gateway_config",
    "services_in_descriptor",
]
