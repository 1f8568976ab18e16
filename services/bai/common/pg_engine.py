"""The async PostgreSQL engine every service builds, with a free liveness check.

SQLAlchemy's `pool_pre_ping` costs three round trips on every checkout with
asyncpg (BEGIN, an empty statement, ROLLBACK): measured, most of the
manager's statements were those pings. asyncpg already learns when the server
closes a connection (a restart, a terminated backend): the socket's EOF marks
it closed. So a checkout only asks the driver, and a closed connection is
swapped for a fresh one by the pool before anyone uses it. A connection that
dies silently mid-flight still fails its statement once, as it would have
with a ping; SQLAlchemy then invalidates the whole pool.
"""

from __future__ import annotations

from typing import Any

from sqlalchemy import event, exc
from sqlalchemy.ext.asyncio import AsyncEngine, create_async_engine
from sqlalchemy.pool import ConnectionPoolEntry, PoolProxiedConnection


def _refuse_closed(
    _dbapi_connection: Any, record: ConnectionPoolEntry, _proxy: PoolProxiedConnection
) -> None:
    driver = record.driver_connection
    if driver is None or driver.is_closed():
        # The pool discards this connection and checks out (or opens) another.
        raise exc.DisconnectionError("the server closed this connection")


def create_pg_engine(url: str, pool_size: int, **options: Any) -> AsyncEngine:
    """An engine whose pool hands out only connections the driver believes open."""
    engine = create_async_engine(url, pool_size=pool_size, **options)
    event.listen(engine.sync_engine.pool, "checkout", _refuse_closed)
    return engine
