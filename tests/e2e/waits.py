"""Bounded waits for the e2e tests: against hanging, never timing assertions."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from typing import Any, TypeVar

# A loaded machine may be slow to start containers.
DEADLINE = 60.0

T = TypeVar("T")


async def eventually(check: Callable[[], Any], what: str, limit: float = DEADLINE) -> Any:
    """Poll `check` (sync or async) until it returns something truthy, and return
    that; fail naming `what` after `limit`."""
    loop = asyncio.get_running_loop()
    end = loop.time() + limit
    last: Any = None
    while True:
        value = check()
        if asyncio.iscoroutine(value):
            value = await value
        if value:
            return value
        last = value
        if loop.time() > end:
            raise AssertionError(f"never happened within {limit:.0f}s: {what} (last: {last!r})")
        await asyncio.sleep(0.1)


async def bounded(step: Awaitable[T], what: str, limit: float = 30.0) -> T:
    try:
        return await asyncio.wait_for(step, limit)
    except TimeoutError:
        raise AssertionError(f"did not finish within {limit:.0f}s: {what}") from None
