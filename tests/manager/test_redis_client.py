"""The manager's Redis client ends a cancelled task every time.

redis-py's asyncio client can swallow a CancelledError that lands mid-read
(about one in twelve for XREAD BLOCK here), and a task that follows a stream
then never ends: stopping the manager hung on it. Each case cancels a follower
at random moments many times over and requires every one to end.
"""

from __future__ import annotations

import asyncio
import random
from collections.abc import Awaitable, Callable

import pytest

from bai.manager.redis_client import Redis
from bai.stack.testing import ThrowawayStack

ROUNDS = 150
STREAM = "bai:test:cancel-stream"
CHANNEL = "bai:test:cancel-channel"


async def _follow_stream(redis: Redis) -> None:
    while True:
        await redis.xread({STREAM: "$"}, count=10, block=random.choice([1, 5, 50, 2000]))


async def _follow_stream_in_pipelines(redis: Redis) -> None:
    while True:
        async with redis.pipeline(transaction=True) as pipe:
            pipe.xread({STREAM: "$"}, count=10, block=random.choice([1, 5, 50]))
            await pipe.execute()


async def _follow_channel(redis: Redis) -> None:
    async with redis.pubsub(ignore_subscribe_messages=True) as pubsub:
        await pubsub.subscribe(CHANNEL)
        async for _message in pubsub.listen():
            pass


async def _write(redis: Redis, stop: asyncio.Event) -> None:
    while not stop.is_set():
        await redis.xadd(STREAM, {"n": "1"}, maxlen=100)
        await redis.publish(CHANNEL, "1")
        await asyncio.sleep(random.random() * 0.005)


@pytest.mark.parametrize(
    "follow",
    [_follow_stream, _follow_stream_in_pipelines, _follow_channel],
    ids=["xread", "pipeline", "pubsub"],
)
async def test_a_cancelled_follower_always_ends(
    stack: ThrowawayStack, follow: Callable[[Redis], Awaitable[None]]
) -> None:
    redis = Redis.from_url(stack.redis_url)
    stop = asyncio.Event()  # not cancel(): the writer awaits Redis too
    writer = asyncio.create_task(_write(redis, stop))
    stuck = 0
    try:
        for _ in range(ROUNDS):
            task = asyncio.create_task(follow(redis))
            await asyncio.sleep(random.random() * 0.02)
            task.cancel()
            done, _pending = await asyncio.wait([task], timeout=5)
            if not done:
                stuck += 1
                task.cancel()
            else:
                assert task.cancelled(), task.exception()
    finally:
        stop.set()
        await writer
        await redis.delete(STREAM)
        await redis.aclose()
    assert stuck == 0, f"{stuck} of {ROUNDS} cancelled followers went on"
