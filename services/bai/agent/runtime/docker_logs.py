"""Docker's log stream, demultiplexed: each frame of `GET /containers/<id>/logs`
(without a TTY) is an 8-byte header (stream type, 3 zero bytes, big-endian
length) and one log entry, which with `timestamps=1` starts with its RFC 3339
time and a space."""

from __future__ import annotations

import asyncio
import re
import struct
from collections.abc import AsyncIterator
from datetime import UTC, datetime
from typing import Literal, Protocol

from bai.agent.runtime.base import LogLine

FRAME_HEADER = struct.Struct(">BxxxL")
STREAM_STDERR = 2
_TIMESTAMP = re.compile(rb"^(\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d)(?:\.(\d+))?(Z|[+-]\d\d:\d\d) ")


class ByteStream(Protocol):
    async def readexactly(self, n: int) -> bytes: ...


def parse_docker_time(value: str) -> datetime | None:
    """Docker's RFC 3339 times carry nanoseconds; its zero time means "never"."""
    match = _TIMESTAMP.match(value.encode() + b" ")
    if match is None or value.startswith("0001-01-01"):
        return None
    return _to_datetime(match)


def split_timestamp(entry: bytes) -> tuple[datetime, bytes]:
    match = _TIMESTAMP.match(entry)
    if match is None:
        return datetime.now(UTC), entry
    return _to_datetime(match) or datetime.now(UTC), entry[match.end() :]


def _to_datetime(match: re.Match[bytes]) -> datetime | None:
    whole, fraction, zone = match.groups()
    micros = (fraction or b"0").decode()[:6].ljust(6, "0")
    offset = "+00:00" if zone == b"Z" else zone.decode()
    try:
        return datetime.fromisoformat(f"{whole.decode()}.{micros}{offset}")
    except ValueError:
        return None


async def demultiplex(stream: ByteStream) -> AsyncIterator[LogLine]:
    """LogLines until the stream ends (IncompleteReadError from a clean end is the end)."""
    while True:
        try:
            header = await stream.readexactly(FRAME_HEADER.size)
            kind, length = FRAME_HEADER.unpack(header)
            entry = await stream.readexactly(length)
        except asyncio.IncompleteReadError:
            return
        name: Literal["stdout", "stderr"] = "stderr" if kind == STREAM_STDERR else "stdout"
        time, data = split_timestamp(entry)
        yield LogLine(stream=name, time=time, data=data)
