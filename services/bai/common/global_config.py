"""Shared configuration in etcd: `<prefix>/config/<component>/<a>/<b> = <json>`.

Every replica of a component reads the same tree at start-up; it sits between
the model's defaults and the local TOML file (see bai.common.config). Values
are JSON when they parse, else plain strings. An unreachable etcd is an
error: a component must not start with half its configuration.
"""

from __future__ import annotations

import json
from typing import Any

import aetcd

from bai.common.config import nest, parse_value
from bai.common.errors import Unavailable


def tree_from_items(items: list[tuple[str, bytes]], root: str) -> dict[str, Any]:
    return nest(
        (
            [p for p in key[len(root) :].split("/") if p],
            parse_value(raw.decode("utf-8", errors="replace")),
        )
        for key, raw in items
    )


def component_root(prefix: str, component: str) -> str:
    return f"{prefix.rstrip('/')}/config/{component}/"


async def load_global_config(host: str, port: int, prefix: str, component: str) -> dict[str, Any]:
    root = component_root(prefix, component)
    try:
        async with aetcd.Client(host=host, port=port, timeout=5) as client:
            result = await client.get_prefix(root.encode())
    except Exception as exc:  # aetcd wraps grpc errors in its own tree
        raise Unavailable(f"etcd at {host}:{port} is unreachable: {exc}") from exc
    return tree_from_items([(kv.key.decode(), kv.value) for kv in result], root)


async def put_global_config(
    host: str, port: int, prefix: str, component: str, path: str, value: Any
) -> None:
    key = component_root(prefix, component) + path.strip("/")
    async with aetcd.Client(host=host, port=port, timeout=5) as client:
        await client.put(key.encode(), json.dumps(value).encode())
