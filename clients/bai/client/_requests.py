"""Building request messages from a request object and/or keyword arguments.

Keyword values may be given in friendlier Python shapes than the messages:
``datetime`` for Timestamp, ``timedelta`` for Duration, a list of paths for
FieldMask, a ``{slot: value}`` mapping for ResourceSlots and an enum value's
name (``"USER_ROLE_ADMIN"`` or just ``"admin"``) for enum fields.
"""

from __future__ import annotations

import uuid
from collections.abc import Iterable, Mapping
from datetime import datetime, timedelta
from typing import TypeVar, cast

from google.protobuf import duration_pb2, field_mask_pb2, timestamp_pb2
from google.protobuf.descriptor import Descriptor, EnumDescriptor, FieldDescriptor
from google.protobuf.message import Message

from bai.api.common.v1 import types_pb2
from bai.client._naming import snake

M = TypeVar("M", bound=Message)

REQUEST_ID = "request_id"


def enum_value(enum: EnumDescriptor, value: object) -> object:
    """Accept an enum number, its full name or its name without the type prefix."""
    if not isinstance(value, str):
        return value
    if value in enum.values_by_name:
        return enum.values_by_name[value].number
    prefix = _enum_prefix(enum.name)
    candidate = prefix + value.upper().replace("-", "_")
    if candidate in enum.values_by_name:
        return enum.values_by_name[candidate].number
    names = ", ".join(short_enum_name(enum, v.number) for v in enum.values if v.number)
    raise ValueError(f"{value!r} is not a {enum.name} (one of: {names})")


def _enum_prefix(enum_name: str) -> str:
    return snake(enum_name).upper() + "_"


def short_enum_name(enum: EnumDescriptor, number: int) -> str:
    """``USER_ROLE_ADMIN`` -> ``admin``; ``SCHEDULER_TYPE_FAIR_SHARE`` -> ``fair-share``."""
    value = enum.values_by_number.get(number)
    if value is None:
        return str(number)
    return value.name.removeprefix(_enum_prefix(enum.name)).lower().replace("_", "-")


def _message_type(field: FieldDescriptor) -> Descriptor:
    assert field.message_type is not None
    return field.message_type


def _message_value(field: FieldDescriptor, value: object) -> object:
    name = _message_type(field).full_name
    if name == "google.protobuf.Timestamp" and isinstance(value, datetime):
        ts = timestamp_pb2.Timestamp()
        ts.FromDatetime(value)
        return ts
    if name == "google.protobuf.Duration" and isinstance(value, timedelta):
        duration = duration_pb2.Duration()
        duration.FromTimedelta(value)
        return duration
    if name == "google.protobuf.FieldMask" and not isinstance(value, Message):
        if isinstance(value, str):
            value = [value]
        return field_mask_pb2.FieldMask(paths=list(value))  # type: ignore[call-overload]
    if name == "bai.api.common.v1.ResourceSlots" and isinstance(value, Mapping):
        return types_pb2.ResourceSlots(slots={str(k): str(v) for k, v in value.items()})
    return value


def _is_map(field: FieldDescriptor) -> bool:
    return (
        field.type == FieldDescriptor.TYPE_MESSAGE and _message_type(field).GetOptions().map_entry
    )


def _single(field: FieldDescriptor, value: object) -> object:
    if field.type == FieldDescriptor.TYPE_ENUM:
        assert field.enum_type is not None
        return enum_value(field.enum_type, value)
    if field.type == FieldDescriptor.TYPE_MESSAGE:
        return _message_value(field, value)
    return value


def convert(field: FieldDescriptor, value: object) -> object:
    """Turn a friendly keyword value into what the message constructor accepts."""
    if _is_map(field):
        value_field = _message_type(field).fields_by_name["value"]
        assert isinstance(value, Mapping)
        return {k: _single(value_field, v) for k, v in value.items()}
    if field.is_repeated:
        assert isinstance(value, Iterable) and not isinstance(value, str | bytes)
        return [_single(field, v) for v in value]
    return _single(field, value)


def build_request(
    cls: type[M],
    request: M | None,
    fields: Mapping[str, object],
    *,
    fill_request_id: bool = False,
) -> M:
    """A new ``cls`` message: a copy of ``request`` with the non-None ``fields`` set.

    A keyword replaces the whole field (repeated and map fields included). With
    ``fill_request_id``, an empty ``request_id`` gets a fresh UUID (hex) so that
    retries of the call are recognised by the server as one request.
    """
    descriptor = cast(Descriptor, cls.DESCRIPTOR)  # the upb descriptor has the same API
    given = {
        name: convert(descriptor.fields_by_name[name], v)
        for name, v in fields.items()
        if v is not None
    }
    out = cls()
    if request is not None:
        if not isinstance(request, cls):
            raise TypeError(f"expected {cls.__name__}, got {type(request).__name__}")
        out.CopyFrom(request)
        for name in given:
            out.ClearField(name)
    out.MergeFrom(cls(**given))
    if fill_request_id and not getattr(out, REQUEST_ID):
        setattr(out, REQUEST_ID, uuid.uuid4().hex)
    return out
