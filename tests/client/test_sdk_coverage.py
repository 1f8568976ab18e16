"""Every public RPC has a typed SDK method, sync and async; every paged list a pager."""

from __future__ import annotations

import importlib
import inspect
import pkgutil
import typing

from google.protobuf.descriptor import ServiceDescriptor

from bai.client import SERVICE_ATTRIBUTES, AsyncClient, Client, _naming


def public_services() -> list[ServiceDescriptor]:
    found = []
    for package in _naming.PACKAGES:
        pkg = importlib.import_module(package)
        for info in pkgutil.iter_modules(pkg.__path__):
            if info.name.endswith("_pb2"):
                module = importlib.import_module(f"{package}.{info.name}")
                for service in module.DESCRIPTOR.services_by_name.values():
                    if service.full_name not in _naming.INTERNAL_SERVICES:
                        found.append(service)
    return found


def test_there_are_services_to_cover() -> None:
    names = {s.name for s in public_services()}
    assert {"AuthService", "DomainService", "UserService", "AuditLogService"} <= names
    assert "AgentRegistryService" not in names


def _missing(client: object) -> list[str]:
    missing = []
    for service in public_services():
        attribute = _naming.service_attribute(service.name)
        facade = getattr(client, attribute, None)
        if facade is None:
            missing.append(f"{service.full_name} (no client.{attribute})")
            continue
        for method in service.methods:
            name = _naming.method_name(method.name)
            fn = getattr(facade, name, None)
            if fn is None:
                missing.append(f"{service.full_name}/{method.name} (no .{name})")
                continue
            hints = typing.get_type_hints(fn)
            if "return" not in hints or hints["return"] is typing.Any:
                missing.append(f"{service.full_name}/{method.name} (untyped)")
            if not method.client_streaming:
                params = inspect.signature(fn).parameters
                fields = [f.name for f in method.input_type.fields]
                absent = [f for f in fields if f not in params and f + "_" not in params]
                if absent:
                    missing.append(f"{service.full_name}/{method.name} (no keywords {absent})")
            lists = method.name.startswith("List") and "next_page_token" in (
                method.output_type.fields_by_name
            )
            if lists and not hasattr(facade, _naming.pager_name(method.name)):
                missing.append(f"{service.full_name}/{method.name} (no pager)")
    return missing


def test_every_rpc_has_a_sync_method() -> None:
    client = Client("127.0.0.1:1")  # channels connect lazily
    try:
        assert _missing(client) == [], "regenerate with: .venv/bin/python scripts/gen_sdk.py"
    finally:
        client.close()


async def test_every_rpc_has_an_async_method() -> None:
    client = AsyncClient("127.0.0.1:1")
    try:
        assert _missing(client) == [], "regenerate with: .venv/bin/python scripts/gen_sdk.py"
    finally:
        await client.close()


def test_service_attributes_cover_every_public_service() -> None:
    assert set(SERVICE_ATTRIBUTES) == {s.full_name for s in public_services()}
