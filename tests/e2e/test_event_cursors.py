"""The session event feed's cursors at its edges (real Redis of the test stack)."""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator
from typing import Any

import pytest
from redis.asyncio import Redis

from bai.api.manager.v1 import session_pb2 as pb
from bai.common.errors import FailedPrecondition
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


async def test_the_cursor_of_an_empty_feed_resumes_after_events_arrive(
    empty_feed: Redis,
) -> None:
    start = await events.latest_cursor(empty_feed)
    first = await events.publish(empty_feed, pb.SessionEvent(), scope())
    assert await events.check_cursor(empty_feed, start) == start
    found = await events.read_after(empty_feed, start, block=None)
    assert [e.cursor for e in found] == [first]


async def test_a_cursor_before_trimmed_events_has_expired(empty_feed: Redis) -> None:
    start = await events.latest_cursor(empty_feed)
    first = await events.publish(empty_feed, pb.SessionEvent(), scope())
    second = await events.publish(empty_feed, pb.SessionEvent(), scope())
    await empty_feed.xtrim(events.STREAM_KEY, maxlen=1, approximate=False)
    for stale in (start, first):
        with pytest.raises(FailedPrecondition) as info:
            await events.check_cursor(empty_feed, stale)
        assert info.value.reason == "CURSOR_EXPIRED"
    assert await events.check_cursor(empty_feed, second) == second
