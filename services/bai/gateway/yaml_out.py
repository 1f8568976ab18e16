"""A tiny YAML emitter for Envoy configs (PyYAML is not a dependency).

Handles what Envoy bootstrap configs are made of: dicts with string keys,
lists, strings, ints, floats and bools. Strings that could be read back as
anything but the same string are written JSON-style double-quoted, which is
valid YAML. Dict order is kept, so the output is stable.
"""

from __future__ import annotations

import json
import re
from collections.abc import Mapping, Sequence

Node = Mapping[str, "Node"] | Sequence["Node"] | str | int | float | bool

_PLAIN = re.compile(r"^[A-Za-z_/][A-Za-z0-9_./-]*$")
_RESERVED = {"true", "false", "yes", "no", "on", "off", "y", "n", "null", "~"}


def _scalar(value: str | int | float | bool) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int | float):
        return json.dumps(value)
    if _PLAIN.match(value) and value.lower() not in _RESERVED:
        return value
    return json.dumps(value)


def _is_scalar(value: Node) -> bool:
    return isinstance(value, str | int | float | bool)


def _emit(value: Node, indent: int, out: list[str]) -> None:
    pad = "  " * indent
    if isinstance(value, Mapping):
        for key, item in value.items():
            k = _scalar(key)
            if _is_scalar(item):
                out.append(f"{pad}{k}: {_scalar(item)}")  # type: ignore[arg-type]
            elif not item:
                out.append(f"{pad}{k}: {'{}' if isinstance(item, Mapping) else '[]'}")
            elif isinstance(item, Mapping):
                out.append(f"{pad}{k}:")
                _emit(item, indent + 1, out)
            else:
                out.append(f"{pad}{k}:")
                _emit(item, indent, out)  # lists sit at the key's indentation
        return
    if isinstance(value, Sequence) and not isinstance(value, str):
        for item in value:
            if _is_scalar(item):
                out.append(f"{pad}- {_scalar(item)}")  # type: ignore[arg-type]
            elif not item:
                out.append(f"{pad}- {'{}' if isinstance(item, Mapping) else '[]'}")
            else:
                sub: list[str] = []
                _emit(item, indent + 1, sub)
                first = sub[0][len(pad) + 2 :]
                out.append(f"{pad}- {first}")
                out.extend(sub[1:])
        return
    raise TypeError(f"cannot emit a bare scalar at top level: {value!r}")


def dump(value: Mapping[str, Node], header: str = "") -> str:
    """Render `value` as block-style YAML, with `header` as leading comments."""
    out = [f"# {line}".rstrip() for line in header.splitlines()]
    _emit(value, 0, out)
    return "\n".join(out) + "\n"
