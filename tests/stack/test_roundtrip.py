"""Real round trips through the session's throwaway PostgreSQL, Redis and etcd."""

from __future__ import annotations

import aetcd
import redis.asyncio as aioredis
import sqlalchemy as sa
from sqlalchemy.ext.asyncio import create_async_engine

from bai.stack.testing import ThrowawayStack


async def test_postgres_sql(stack: ThrowawayStack) -> None:
    engine = create_async_engine(stack.pg_dsn)
    try:
        async with engine.begin() as conn:
            assert (await conn.execute(sa.text("SELECT 1"))).scalar_one() == 1
            who = (await conn.execute(sa.text("SELECT current_user, current_database()"))).one()
            assert tuple(who) == ("bai", "bai")
            await conn.execute(sa.text("CREATE TABLE t_roundtrip (id int PRIMARY KEY, v text)"))
            await conn.execute(sa.text("INSERT INTO t_roundtrip VALUES (1, 'hello')"))
            got = await conn.execute(sa.text("SELECT v FROM t_roundtrip WHERE id = 1"))
            assert got.scalar_one() == "hello"
            await conn.execute(sa.text("DROP TABLE t_roundtrip"))
    finally:
        await engine.dispose()


async def test_redis_set_get(stack: ThrowawayStack) -> None:
    client = aioredis.Redis.from_url(stack.redis_url)
    try:
        assert await client.ping()
        await client.set("bai:test", "value")
        assert await client.get("bai:test") == b"value"
        await client.delete("bai:test")
    finally:
        await client.aclose()


async def test_etcd_put_get(stack: ThrowawayStack) -> None:
    host, _, port = stack.etcd_endpoint.rpartition(":")
    assert (host, int(port)) == (stack.etcd_host, stack.etcd_port)
    client = aetcd.Client(host, int(port))
    try:
        await client.put(b"/bai/test", b"value")
        got = await client.get(b"/bai/test")
        assert got is not None and got.value == b"value"
        await client.delete(b"/bai/test")
        assert await client.get(b"/bai/test") is None
    finally:
        await client.close()


def test_not_on_seed_ports(stack: ThrowawayStack) -> None:
    assert not {8101, 8111, 8121, 8122} & set(stack.config.ports.values())
