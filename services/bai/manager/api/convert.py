"""Small conversions between rows and protobuf messages."""

from __future__ import annotations

from datetime import UTC, datetime

from google.protobuf.timestamp_pb2 import Timestamp

from bai.api.manager.v1 import auth_pb2
from bai.manager.auth.principal import Role

ROLE_TO_PROTO = {
    Role.SUPERADMIN: auth_pb2.USER_ROLE_SUPERADMIN,
    Role.ADMIN: auth_pb2.USER_ROLE_ADMIN,
    Role.USER: auth_pb2.USER_ROLE_USER,
    Role.MONITOR: auth_pb2.USER_ROLE_MONITOR,
}
ROLE_FROM_PROTO = {v: k for k, v in ROLE_TO_PROTO.items()}


def timestamp(value: datetime | None) -> Timestamp | None:
    if value is None:
        return None
    ts = Timestamp()
    ts.FromDatetime(value.astimezone(UTC))
    return ts


def timestamp_from_epoch(seconds: float) -> Timestamp:
    ts = Timestamp()
    ts.FromDatetime(datetime.fromtimestamp(seconds, UTC))
    return ts
