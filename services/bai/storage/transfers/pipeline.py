"""Overlapping blocking file work with the network.

Disk reads and writes (and the upload's sha256) run in a worker thread,
one step ahead of the event loop: while a chunk is hashed and written, the
next one is received; while one is sent, the next is read. At most one
step is in flight, so memory stays at a couple of chunks.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncGenerator, AsyncIterator, Callable, Iterator
from typing import Any, TypeVar

from bai.storage.transfers.upload import Upload, UploadState

T = TypeVar("T")


class OneAhead:
    """Blocking steps run in order in a thread, each started without waiting for it."""

    def __init__(self) -> None:
        self.pending: asyncio.Future[Any] | None = None

    async def submit(self, fn: Callable[..., Any], *args: Any) -> None:
        """Wait for the previous step (raising its error), then start this one."""
        await self.wait()
        self.pending = asyncio.ensure_future(asyncio.to_thread(fn, *args))

    async def wait(self) -> None:
        if self.pending is not None:
            pending, self.pending = self.pending, None
            await pending

    async def settle(self) -> None:
        """Wait for the step in flight, ignoring its error (before closing its file)."""
        with contextlib.suppress(Exception):
            await self.wait()


async def prefetched(items: Iterator[T]) -> AsyncGenerator[T, None]:
    """The items of a blocking iterator, the next one read while this one is used."""
    step: asyncio.Future[T | None] = asyncio.ensure_future(asyncio.to_thread(next, items, None))
    try:
        while (item := await step) is not None:
            step = asyncio.ensure_future(asyncio.to_thread(next, items, None))
            yield item
    finally:
        with contextlib.suppress(BaseException):
            await step


async def run_upload(upload: Upload, blocks: AsyncIterator[bytes]) -> UploadState:
    """Begin `upload`, write `blocks` one ahead of the network, finish it; the file is
    closed however it ends (what was written stays for a resume)."""
    writer = OneAhead()
    try:
        await asyncio.to_thread(upload.begin)
        async for block in blocks:
            await writer.submit(upload.write, block)
        await writer.wait()
        return await asyncio.to_thread(upload.finish)
    finally:
        await writer.settle()
        upload.close()
