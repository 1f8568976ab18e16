"""With PostgreSQL or Redis unreachable, calls fail UNAVAILABLE / DEPENDENCY_UNAVAILABLE
(retryable by clients), never INTERNAL."""

from __future__ import annotations

from collections.abc import AsyncIterator

import grpc
import pytest

from bai.api.manager.v1 import auth_pb2, auth_pb2_grpc
from bai.common.server import start_server
from bai.manager.config import DatabaseConfig, ManagerConfig, RedisConfig
from bai.manager.context import ManagerContext
from bai.manager.main import manager_server_spec
from bai.stack.testing import free_ports
from tests.manager.fixtures import ManagerHandle, bearer
from tests.rpc_errors import reason_of


async def _serve(config: ManagerConfig) -> AsyncIterator[str]:
    ctx = ManagerContext.create(config)
    running = await start_server(manager_server_spec(ctx))
    try:
        yield f"127.0.0.1:{running.grpc_port}"
    finally:
        await running.stop()
        await ctx.close()


@pytest.fixture
async def no_database(stack) -> AsyncIterator[str]:  # type: ignore[no-untyped-def]
    dead = free_ports(1)[0]
    config = ManagerConfig(
        grpc_port=0,
        metrics_port=0,
        db=DatabaseConfig(url=f"postgresql+asyncpg://bai:bai@127.0.0.1:{dead}/bai"),
        redis=RedisConfig(url=stack.redis_url),
    )
    async for address in _serve(config):
        yield address


@pytest.fixture
async def no_redis(manager: ManagerHandle) -> AsyncIterator[str]:
    dead = free_ports(1)[0]
    config = manager.ctx.config.model_copy(
        update={"redis": RedisConfig(url=f"redis://127.0.0.1:{dead}/0")}
    )
    async for address in _serve(config):
        yield address


async def _unavailable(call) -> None:  # type: ignore[no-untyped-def]
    with pytest.raises(grpc.aio.AioRpcError) as info:
        await call
    assert info.value.code() == grpc.StatusCode.UNAVAILABLE, info.value.details()
    assert reason_of(info.value) == "DEPENDENCY_UNAVAILABLE"


async def test_database_down(no_database: str) -> None:
    async with grpc.aio.insecure_channel(no_database) as channel:
        stub = auth_pb2_grpc.AuthServiceStub(channel)
        await _unavailable(stub.Login(auth_pb2.LoginRequest(username="admin", password="x")))


async def test_redis_down(no_redis: str, manager: ManagerHandle) -> None:
    async with grpc.aio.insecure_channel(no_redis) as channel:
        stub = auth_pb2_grpc.AuthServiceStub(channel)
        await _unavailable(
            stub.WhoAmI(auth_pb2.WhoAmIRequest(), metadata=bearer(manager.admin_token))
        )
