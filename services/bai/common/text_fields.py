"""Finding strings no backend can store: NUL characters anywhere in a request.

PostgreSQL text cannot hold U+0000, and no name, path or description needs
it, so every service edge refuses such requests up front with a field
violation instead of letting the database fail halfway.
"""

from __future__ import annotations

from google.protobuf.descriptor import FieldDescriptor
from google.protobuf.message import Message


def _bad(value: object) -> bool:
    return isinstance(value, str) and "\x00" in value


def nul_fields(message: Message, prefix: str = "") -> list[str]:
    """Paths of string fields, map keys and values in `message` holding a NUL."""
    found: list[str] = []
    for field, value in message.ListFields():
        path = f"{prefix}{field.name}"
        entry = field.message_type
        if entry is not None and entry.GetOptions().map_entry:
            value_is_message = entry.fields_by_name["value"].message_type is not None
            for key, item in value.items():
                if _bad(key):
                    found.append(f"{path}[key]")
                if value_is_message:
                    found += nul_fields(item, f"{path}[{key!r}].")
                elif _bad(item):
                    found.append(f"{path}[{key!r}]")
        elif field.type == FieldDescriptor.TYPE_MESSAGE:
            items = value if field.is_repeated else [value]
            for i, item in enumerate(items):
                where = f"{path}[{i}]." if field.is_repeated else f"{path}."
                found += nul_fields(item, where)
        elif field.is_repeated:
            found += [f"{path}[{i}]" for i, item in enumerate(value) if _bad(item)]
        elif _bad(value):
            found.append(path)
    return found
