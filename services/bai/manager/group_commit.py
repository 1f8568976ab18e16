"""Group commit: writes submitted while one batch is being written go together in
the next one.

A transaction or a round trip costs about the same for one row as for fifty,
so under load this is what keeps the cost per write flat; an idle process
writes a lone item at once, so nothing waits for company. Every caller still
waits for its own write: what it was told written is written.

A batch that fails as a whole is retried item by item, so that one bad item
fails only its own caller.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections import deque
from collections.abc import Awaitable, Callable, Sequence
from typing import Generic, TypeVar

T = TypeVar("T")
R = TypeVar("R")


class GroupCommit(Generic[T, R]):
    """`await group.submit(item)` -> what `write_many` returned for the item.

    `write_many(items)` writes items in one go and returns one result per item,
    in order. `weight(item)` (default 1) bounds a batch at `max_weight`.
    """

    def __init__(
        self,
        write_many: Callable[[Sequence[T]], Awaitable[Sequence[R]]],
        *,
        max_weight: int = 512,
        weight: Callable[[T], int] = lambda _item: 1,
    ) -> None:
        self._write_many = write_many
        self._max_weight = max_weight
        self._weight = weight
        self._waiting: deque[tuple[T, asyncio.Future[R]]] = deque()
        self._worker: asyncio.Task[None] | None = None

    async def submit(self, item: T) -> R:
        future: asyncio.Future[R] = asyncio.get_running_loop().create_future()
        self._waiting.append((item, future))
        if self._worker is None or self._worker.done():
            self._worker = asyncio.create_task(self._drain())
        return await future

    async def close(self) -> None:
        if self._worker is not None:
            self._worker.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._worker

    async def _drain(self) -> None:
        while self._waiting:
            batch = self._take()
            try:
                await self._write(batch)
            except asyncio.CancelledError:
                for _, future in [*batch, *self._waiting]:
                    future.cancel()
                raise

    def _take(self) -> list[tuple[T, asyncio.Future[R]]]:
        first = self._waiting.popleft()
        batch, weight = [first], self._weight(first[0])
        while self._waiting and weight + self._weight(self._waiting[0][0]) <= self._max_weight:
            weight += self._weight(self._waiting[0][0])
            batch.append(self._waiting.popleft())
        return batch

    async def _write(self, batch: list[tuple[T, asyncio.Future[R]]]) -> None:
        if len(batch) > 1:
            try:
                results = await self._write_many([item for item, _ in batch])
            except Exception:
                pass  # written alone below, each failure reaches only its caller
            else:
                for (_, future), result in zip(batch, results, strict=True):
                    _settle(future, result)
                return
        for item, future in batch:
            try:
                (result,) = await self._write_many([item])
            except Exception as exc:
                if not future.done():
                    future.set_exception(exc)
                continue
            _settle(future, result)


def _settle(future: asyncio.Future[R], result: R) -> None:
    if not future.done():  # its caller may have gone away meanwhile
        future.set_result(result)
