"""Rendering messages: aligned tables and key/value blocks by default, JSON with --json.

JSON is ``json_format.MessageToDict`` with proto field names and every field
present (so scripts see ``"is_active": false`` rather than a missing key).
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Sequence
from datetime import UTC
from typing import Any, cast

from google.protobuf import json_format
from google.protobuf.descriptor import Descriptor, FieldDescriptor
from google.protobuf.message import Message

from bai.cli.context import Context
from bai.client._requests import short_enum_name

EMPTY = "-"
SPECIAL = {
    "google.protobuf.Timestamp",
    "google.protobuf.Duration",
    "bai.api.common.v1.ResourceSlots",
    "bai.api.common.v1.Actor",
}


def descriptor(message: Message) -> Descriptor:
    return cast(Descriptor, message.DESCRIPTOR)  # the upb descriptor has the same API


def to_dict(message: Message) -> dict[str, Any]:
    return json_format.MessageToDict(
        message, preserving_proto_field_name=True, always_print_fields_with_no_presence=True
    )


def _message_text(message: Message) -> str:
    name = message.DESCRIPTOR.full_name
    if name == "google.protobuf.Timestamp":
        dt = message.ToDatetime(tzinfo=UTC)  # type: ignore[attr-defined]
        return str(dt.isoformat(timespec="seconds").replace("+00:00", "Z"))
    if name == "google.protobuf.Duration":
        return f"{message.ToTimedelta().total_seconds():g}s"  # type: ignore[attr-defined]
    if name == "bai.api.common.v1.ResourceSlots":
        slots = message.slots  # type: ignore[attr-defined]
        return ",".join(f"{k}={slots[k]}" for k in sorted(slots)) or EMPTY
    if name == "bai.api.common.v1.Actor":
        return str(message.email or message.user_id or message.access_key) or EMPTY  # type: ignore[attr-defined]
    fields = descriptor(message).fields
    if len(fields) == 1:  # wrappers such as HostPermissions
        return value_text(message, fields[0])
    return json.dumps(to_dict(message), separators=(",", ":"))


def _scalar_text(field: FieldDescriptor, value: Any) -> str:
    if field.type == FieldDescriptor.TYPE_ENUM:
        assert field.enum_type is not None
        return short_enum_name(field.enum_type, value)
    if field.type == FieldDescriptor.TYPE_MESSAGE:
        return _message_text(value)
    if field.type == FieldDescriptor.TYPE_BOOL:
        return "yes" if value else "no"
    return str(value) if value != "" else EMPTY


def value_text(message: Message, field: FieldDescriptor) -> str:
    """One field of a message as short, readable text."""
    value = getattr(message, field.name)
    if field.message_type is not None and field.message_type.GetOptions().map_entry:
        value_field = field.message_type.fields_by_name["value"]
        parts = [f"{k}={_scalar_text(value_field, value[k])}" for k in sorted(value)]
        return "; ".join(parts) or EMPTY
    if field.is_repeated:
        return ",".join(_scalar_text(field, v) for v in value) or EMPTY
    if field.has_presence and not message.HasField(field.name):
        return EMPTY
    return _scalar_text(field, value)


def path_text(message: Message, path: str) -> str:
    """``"scheduler_opts.pending_timeout"`` -> its text."""
    head, _, rest = path.partition(".")
    field = descriptor(message).fields_by_name[head]
    if rest:
        return path_text(getattr(message, head), rest)
    return value_text(message, field)


def flatten(message: Message, prefix: str = "") -> list[tuple[str, str]]:
    """Every field as (dotted name, text); plain sub-messages are expanded."""
    rows: list[tuple[str, str]] = []
    for field in descriptor(message).fields:
        sub = field.message_type
        nested = (
            sub is not None
            and not field.is_repeated
            and sub.full_name not in SPECIAL
            and len(sub.fields) > 1
        )
        if nested:
            rows += flatten(getattr(message, field.name), f"{prefix}{field.name}.")
        else:
            rows.append((prefix + field.name, value_text(message, field)))
    return rows


def table(headers: Sequence[str], rows: Sequence[Sequence[str]]) -> str:
    widths = [len(h) for h in headers]
    for row in rows:
        widths = [max(w, len(c)) for w, c in zip(widths, row, strict=True)]
    lines = [headers, *rows]
    return "\n".join(
        "  ".join(c.ljust(w) for c, w in zip(line, widths, strict=True)).rstrip() for line in lines
    )


def print_list(ctx: Context, items: Iterable[Message], columns: Sequence[tuple[str, str]]) -> None:
    """Items as a table of (header, field path) columns, or a JSON array."""
    items = list(items)
    if ctx.json:
        ctx.print(json.dumps([to_dict(m) for m in items], indent=2))
        return
    rows = [[path_text(m, path) for _, path in columns] for m in items]
    ctx.print(table([h for h, _ in columns], rows))


def print_object(ctx: Context, message: Message, extra: Sequence[tuple[str, str]] = ()) -> None:
    """One message as ``key: value`` lines (with ``extra`` rows), or a JSON object."""
    if ctx.json:
        ctx.print(json.dumps(to_dict(message), indent=2))
        return
    rows = flatten(message) + list(extra)
    width = max((len(k) for k, _ in rows), default=0)
    for key, value in rows:
        ctx.print(f"{key.ljust(width)}  {value}")


def print_done(ctx: Context, text: str, response: Message | None = None) -> None:
    """Confirmation of a change: the text, or the (usually empty) response as JSON."""
    if ctx.json:
        ctx.print(json.dumps(to_dict(response) if response is not None else {}, indent=2))
    else:
        ctx.print(text)
