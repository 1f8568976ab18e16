"""The services' engine hands out only open connections, without pinging.

PostgreSQL ending the pooled connections (a restart does the same) must cost
the next caller nothing: the closed connection is swapped for a fresh one.
"""

from __future__ import annotations

import asyncio

import pytest
from sqlalchemy import text
from sqlalchemy.exc import DBAPIError
from sqlalchemy.ext.asyncio import AsyncEngine, create_async_engine

from bai.common.pg_engine import create_pg_engine


async def _backend_pid(engine: AsyncEngine) -> int:
    async with engine.connect() as db:
        return int((await db.execute(text("SELECT pg_backend_pid()"))).scalar_one())


async def _terminate(dsn: str, pid: int) -> None:
    killer = create_async_engine(dsn)
    try:
        async with killer.connect() as db:
            await db.execute(text("SELECT pg_terminate_backend(:pid)"), {"pid": pid})
    finally:
        await killer.dispose()
    # Let the event loop read the EOF on the terminated connection's socket.
    await asyncio.sleep(0.2)


async def test_a_connection_the_server_closed_is_replaced(stack) -> None:  # type: ignore[no-untyped-def]
    engine = create_pg_engine(stack.pg_dsn, 1)
    try:
        before = await _backend_pid(engine)
        await _terminate(stack.pg_dsn, before)
        after = await _backend_pid(engine)
        assert after != before
    finally:
        await engine.dispose()


async def test_a_plain_pool_would_have_failed(stack) -> None:  # type: ignore[no-untyped-def]
    """The control: without the check, the first caller after the close gets the error."""
    engine = create_async_engine(stack.pg_dsn, pool_size=1)
    try:
        await _terminate(stack.pg_dsn, await _backend_pid(engine))
        with pytest.raises(DBAPIError):
            await _backend_pid(engine)
    finally:
        await engine.dispose()
