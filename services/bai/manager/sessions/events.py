"""The session event feed: a Redis stream every manager replica writes and reads.

Each entry holds one serialized `SessionEvent` (without its cursor) plus the
fields WatchEvents filters and authorizes on. The entry id is the event's
cursor, so a client that lost its stream resumes with the last cursor it
processed; entries are kept for at least `RETENTION` (older cursors answer
CURSOR_EXPIRED). Events are published after the state change is committed:
they notify, the database stays the truth.
"""

from __future__ import annotations

import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import timedelta
from typing import Any

from redis.asyncio import Redis
from redis.exceptions import ResponseError

from bai.api.manager.v1 import session_pb2
from bai.common.errors import FailedPrecondition, FieldViolation, InvalidArgument

STREAM_KEY = "bai:session-events"
RETENTION = timedelta(hours=2)
# A hard cap as well, so a flood of events cannot fill Redis.
MAX_ENTRIES = 200_000
# Longest single blocking read: the client's socket timeout (redis-py: 5 s by
# default) must not fire while Redis legitimately waits; callers loop.
MAX_BLOCK = timedelta(seconds=2)


@dataclass(frozen=True)
class EventScope:
    """Who an event concerns, for filtering and authorization."""

    session_id: str
    access_key: str
    user_id: str
    project_id: str
    domain_name: str


@dataclass(frozen=True)
class StoredEvent:
    cursor: str
    scope: EventScope
    event: session_pb2.SessionEvent


async def publish(redis: Redis, event: session_pb2.SessionEvent, scope: EventScope) -> str:
    """Append the event; returns its cursor."""
    (cursor,) = await publish_many(redis, [(event, scope)])
    return cursor


async def publish_many(
    redis: Redis, items: Sequence[tuple[session_pb2.SessionEvent, EventScope]]
) -> list[str]:
    """Append the events in order; returns their cursors. One round trip for all of
    them and the trim: every status change on the hot path publishes, often several
    at once (a kernel's transition and its session's)."""
    if not items:
        return []
    min_id = int((time.time() - RETENTION.total_seconds()) * 1000)
    async with redis.pipeline(transaction=False) as pipe:
        for event, scope in items:
            fields: dict[str, bytes | str] = {
                "e": event.SerializeToString(),
                "s": scope.session_id,
                "a": scope.access_key,
                "u": scope.user_id,
                "p": scope.project_id,
                "d": scope.domain_name,
            }
            pipe.xadd(STREAM_KEY, fields, minid=min_id, approximate=True)  # type: ignore[arg-type]
        pipe.xtrim(STREAM_KEY, maxlen=MAX_ENTRIES, approximate=True)
        replies = await pipe.execute()
    return [_text(entry_id) for entry_id in replies[:-1]]


def _parse_cursor(cursor: str) -> tuple[int, int]:
    ms, sep, seq = cursor.partition("-")
    if not sep or not ms.isdigit() or not seq.isdigit() or len(cursor) > 40:
        raise InvalidArgument([FieldViolation("cursor", "is not a cursor from an earlier event")])
    return int(ms), int(seq)


async def latest_cursor(redis: Redis) -> str:
    """The cursor of the newest event ("0-0" when none): start "from now"."""
    entries = await redis.xrevrange(STREAM_KEY, count=1)
    if not entries:
        return "0-0"
    entry_id = entries[0][0]
    return entry_id.decode() if isinstance(entry_id, bytes) else str(entry_id)


async def check_cursor(redis: Redis, cursor: str) -> str:
    """Validate a client's cursor; CURSOR_EXPIRED when events after it were trimmed.

    A cursor is good while every event after it is still in the stream: when
    nothing was ever removed (Redis 7 counts entries added), any cursor is, so
    "0-0" (the cursor of an empty feed) stays valid until the first trim. After
    a trim it must be at or after the oldest retained event: Redis does not
    record the last trimmed id, so the cursor of exactly that event expires too
    (a needless resync, never a silent gap).
    """
    position = _parse_cursor(cursor)
    try:
        info: Any = await redis.xinfo_stream(STREAM_KEY)
    except ResponseError:  # no stream yet: nothing was ever trimmed
        return cursor
    added = info.get("entries-added")
    if added is not None and int(added) == int(info.get("length", 0)):
        return cursor
    first = info.get("first-entry")
    if first:
        boundary = _parse_cursor(_text(first[0]))
    else:  # everything was trimmed: only the newest cursor misses nothing
        last = info.get("last-generated-id")
        boundary = _parse_cursor(_text(last) if last else "0-0")
    if position < boundary:
        raise FailedPrecondition(
            "events after this cursor are no longer retained", reason="CURSOR_EXPIRED"
        )
    return cursor


def _text(value: bytes | str) -> str:
    return value.decode() if isinstance(value, bytes) else value


def _decode(entry_id: bytes | str, fields: Mapping[bytes, bytes]) -> StoredEvent:
    cursor = entry_id.decode() if isinstance(entry_id, bytes) else entry_id
    event = session_pb2.SessionEvent.FromString(fields[b"e"])
    event.cursor = cursor
    scope = EventScope(
        session_id=fields[b"s"].decode(),
        access_key=fields[b"a"].decode(),
        user_id=fields[b"u"].decode(),
        project_id=fields[b"p"].decode(),
        domain_name=fields[b"d"].decode(),
    )
    return StoredEvent(cursor, scope, event)


async def read_after(
    redis: Redis, cursor: str, *, block: timedelta | None, count: int = 500
) -> list[StoredEvent]:
    """Events after `cursor`, oldest first; waits up to `block` (at most MAX_BLOCK)
    when there are none."""
    block_ms = None if block is None else max(1, int(min(block, MAX_BLOCK).total_seconds() * 1000))
    result: Any = await redis.xread({STREAM_KEY: cursor}, count=count, block=block_ms)
    return [
        _decode(entry_id, fields) for _key, entries in result or [] for entry_id, fields in entries
    ]
