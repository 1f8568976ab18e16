"""The manager's Redis client: redis-py's asyncio client, minus lost cancellations.

redis-py can swallow a task's CancelledError that lands while it reads a reply
(redis/redis-py#2028, #2551): the command returns normally and the cancelled
task goes on. A loop that follows a stream then never ends, and whoever awaits
it after `cancel()` hangs; with XREAD BLOCK about one cancel in twelve was lost
on our machines. Each call here compares the task's pending cancel requests
before and after and raises the one that got lost. Comparing, rather than
testing for any request, leaves cleanup code that runs after a cancel (and
talks to Redis in a `finally`) undisturbed.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from typing import Any

from redis.asyncio import Redis as _Redis
from redis.asyncio.client import Pipeline as _Pipeline
from redis.asyncio.client import PubSub as _PubSub

LISTEN_POLL_SECONDS = 1.0


def _cancel_requests() -> int:
    task = asyncio.current_task()
    return task.cancelling() if task is not None else 0


def _raise_if_lost(before: int) -> None:
    if _cancel_requests() > before:
        raise asyncio.CancelledError


class Pipeline(_Pipeline):
    async def execute(self, raise_on_error: bool = True) -> list[Any]:
        before = _cancel_requests()
        result = await super().execute(raise_on_error)
        _raise_if_lost(before)
        return result


class PubSub(_PubSub):
    async def listen(self) -> AsyncIterator[Any]:
        """Like redis-py's, but in bounded polls: a cancel swallowed inside a
        read that then retries and blocks again is noticed within one poll."""
        while self.subscribed:
            response = await self.parse_response(block=False, timeout=LISTEN_POLL_SECONDS)
            message = await self.handle_message(response)  # type: ignore[no-untyped-call]
            if message is not None:
                yield message

    async def execute_command(self, *args: Any) -> Any:
        before = _cancel_requests()
        result = await super().execute_command(*args)
        _raise_if_lost(before)
        return result

    async def parse_response(
        self,
        block: bool = True,
        timeout: float = 0,  # noqa: ASYNC109 (redis-py's signature)
    ) -> Any:
        before = _cancel_requests()
        response = await super().parse_response(block, timeout)
        _raise_if_lost(before)
        return response


class Redis(_Redis):
    async def execute_command(self, *args: Any, **options: Any) -> Any:
        before = _cancel_requests()
        result = await super().execute_command(*args, **options)  # type: ignore[no-untyped-call]
        _raise_if_lost(before)
        return result

    def pipeline(self, transaction: bool = True, shard_hint: Any = None) -> Pipeline:
        return Pipeline(self.connection_pool, self.response_callbacks, transaction, shard_hint)

    def pubsub(self, **kwargs: Any) -> PubSub:
        return PubSub(self.connection_pool, event_dispatcher=self._event_dispatcher, **kwargs)
