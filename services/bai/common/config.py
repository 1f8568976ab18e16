"""Typed component configuration: defaults < etcd global < TOML file < environment.

Each component has one pydantic model. Environment overrides use the
component's prefix and double underscores for nesting, e.g.
BAI_MANAGER__DB__URL=postgresql+asyncpg://... or BAI_MANAGER__GRPC_PORT=9000.
Values from the environment are parsed as JSON when they parse, else taken as
strings, so numbers, booleans and lists work.
"""

from __future__ import annotations

import json
import os
import tomllib
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import Any, TypeVar

from pydantic import BaseModel, ValidationError

from bai.common.errors import InvalidArgument

M = TypeVar("M", bound=BaseModel)


def deep_merge(base: Mapping[str, Any], override: Mapping[str, Any]) -> dict[str, Any]:
    merged = dict(base)
    for key, value in override.items():
        if isinstance(value, Mapping) and isinstance(merged.get(key), Mapping):
            merged[key] = deep_merge(merged[key], value)
        else:
            merged[key] = value
    return merged


def parse_value(raw: str) -> Any:
    """JSON when it parses (numbers, booleans, lists, objects), else the string."""
    try:
        return json.loads(raw)
    except ValueError:
        return raw


def nest(entries: Iterable[tuple[list[str], Any]]) -> dict[str, Any]:
    """Build {"a": {"b": v}} from (["a", "b"], v) pairs; a leaf never becomes a branch."""
    tree: dict[str, Any] = {}
    for path, value in entries:
        if not path:
            continue
        node = tree
        for part in path[:-1]:
            child = node.setdefault(part, {})
            if not isinstance(child, dict):
                break
            node = child
        else:
            node[path[-1]] = value
    return tree


def env_overrides(prefix: str, environ: Mapping[str, str]) -> dict[str, Any]:
    """Turn PREFIX__A__B=v variables into {"a": {"b": v}}."""
    marker = prefix.upper() + "__"
    return nest(
        ([part.lower() for part in name[len(marker) :].split("__") if part], parse_value(raw))
        for name, raw in environ.items()
        if name.startswith(marker)
    )


def load_config(
    model: type[M],
    *,
    path: Path | None,
    env_prefix: str,
    global_config: Mapping[str, Any] | None = None,
    environ: Mapping[str, str] | None = None,
) -> M:
    data: dict[str, Any] = dict(global_config or {})
    if path is not None:
        try:
            with path.open("rb") as f:
                data = deep_merge(data, tomllib.load(f))
        except (OSError, tomllib.TOMLDecodeError) as exc:
            raise InvalidArgument.field("config", f"cannot read {path}: {exc}") from exc
    data = deep_merge(data, env_overrides(env_prefix, os.environ if environ is None else environ))
    try:
        return model.model_validate(data)
    except ValidationError as exc:
        raise InvalidArgument.field("config", str(exc)) from exc
