"""The session event feed's cursors at its edges (real Redis of the test stack)."""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator
from typing import Any

import pytest
from redis.asyncio import Redis

from bai.api.manager.v1 import session_pb2 as pb
from bai.manager.sessions import events


@pytest.fixture
async def empty_feed(stack: Any) -> AsyncIterator[Redis]:
    """A Redis database of its own, so the feed starts empty."""
    base = stack.redis_url.rsplit("/", 1)[0]
    redis = Redis.from_url(f"{base}/13")
    await redis.delete(events.STREAM_KEY)
    try:
        yield redis
    finally:
        await redis.delete(events.STREAM_KEY)
        await redis.aclose()


def scope() -> events.EventScope:
    return events.EventScope(str(uuid.uuid4()), "ak", "user", "project", "default")


async def test_a_cursor_of_a_retained_event_replays_what_follows(empty_feed: Redis) -> None:
    first = await events.publish(empty_feed, pb.SessionEvent(), scope())
    second = await events.publish(empty_feed, pb.SessionEvent(), scope())
    assert await events.check_cursor(empty_feed, first) == first
    found = await events.read_after(empty_feed, first, block=None)
    assert [e.cursor for e in found] == [second]


@pytest.mark.xfail(
    strict=True,
    reason="an empty feed's latest_cursor is '0-0' (WatchEvents' start, and the cursor of "
    "its KEEPALIVEs); once events exist check_cursor refuses '0-0' as CURSOR_EXPIRED "
    "although every event after it is retained",
)
async def test_the_cursor_of_an_empty_feed_resumes_after_events_arrive(
    empty_feed: Redis,
) -> None:
    start = await events.latest_cursor(empty_feed)
    first = await events.publish(empty_feed, pb.SessionEvent(), scope())
    assert await events.check_cursor(empty_feed, start) == start
    found = await events.read_after(empty_feed, start, block=None)
    assert [e.cursor for e in found] == [first]
