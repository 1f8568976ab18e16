"""Telling every manager replica that credentials changed, as it happens.

A change bumps the epoch counter and publishes on a Redis channel. While a
replica's subscription is up ("live"), it clears its caches on each message
and trusts them in between, so a cached bearer token costs no Redis round
trip. Whenever the subscription is down, it is not live, and callers fall
back to reading the epoch on every call, which is always correct.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable

from redis.asyncio import Redis
from redis.exceptions import RedisError

CHANNEL = "bai:credentials-changed"

log = logging.getLogger(__name__)


class InvalidationListener:
    def __init__(self, redis: Redis, on_change: Callable[[], None]) -> None:
        self._redis = redis
        self._on_change = on_change
        self.live = False
        # Bumped on every message: stands in for the Redis epoch while live.
        self.generation = 0

    def _changed(self) -> None:
        self.generation += 1
        self._on_change()

    async def run(self, retry_seconds: float = 1.0) -> None:
        while True:
            pubsub = self._redis.pubsub()
            try:
                await pubsub.subscribe(CHANNEL)
                async for message in pubsub.listen():
                    if message["type"] == "subscribe":
                        # Anything published while we were away is unknown.
                        self._changed()
                        self.live = True
                    elif message["type"] == "message":
                        self._changed()
            except (RedisError, OSError):
                log.warning("credential change feed lost; checking every call", exc_info=True)
            finally:
                self.live = False
                await pubsub.aclose()  # type: ignore[no-untyped-call]
            await asyncio.sleep(retry_seconds)


async def publish_change(redis: Redis) -> None:
    await redis.publish(CHANNEL, b"1")
