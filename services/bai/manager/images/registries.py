"""Which configured registry an image comes from, and what agents need to pull it."""

from __future__ import annotations

import urllib.parse
from collections.abc import Mapping
from types import MappingProxyType

from bai.api.common.v1 import image_pb2
from bai.manager.agents.images import split_canonical
from bai.manager.config import RegistryConfig

Registries = Mapping[str, RegistryConfig]
NO_REGISTRIES: Registries = MappingProxyType({})


def registry_host(config: RegistryConfig) -> str:
    """The registry part of canonical names for images of `config` ("host:port")."""
    return urllib.parse.urlsplit(config.url).netloc or config.url


def find_registry(
    registries: Registries, registry_name: str, canonical: str
) -> tuple[str, RegistryConfig] | None:
    """The registry named `registry_name`, else the one whose host begins `canonical`."""
    config = registries.get(registry_name)
    if config is not None:
        return registry_name, config
    host = split_canonical(canonical).registry
    for name, candidate in registries.items():
        if host and registry_host(candidate) == host:
            return name, candidate
    return None


def registry_ref(
    registries: Registries, registry_name: str, canonical: str
) -> image_pb2.RegistryRef:
    """RegistryRef with url and credentials when the registry is configured (name only
    otherwise: the agent then pulls anonymously from the canonical name's host)."""
    found = find_registry(registries, registry_name, canonical)
    if found is None:
        return image_pb2.RegistryRef(name=registry_name)
    name, config = found
    return image_pb2.RegistryRef(
        name=name,
        url=config.url,
        type=config.type,
        username=config.username,
        password=config.password,
        ssl_verify=config.ssl_verify,
    )
