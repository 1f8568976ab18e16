"""A real manager (in this process, on a free port) over the test stack."""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator
from dataclasses import dataclass

import grpc
import pytest

from bai.api.manager.v1 import auth_pb2, auth_pb2_grpc
from bai.common.server import RunningServer, start_server
from bai.manager.bootstrap import bootstrap
from bai.manager.config import DatabaseConfig, ManagerConfig, RedisConfig
from bai.manager.context import ManagerContext
from bai.manager.db.migrations import upgrade_async
from bai.manager.main import manager_server_spec

ADMIN_PASSWORD = "admin-password-1"


@dataclass
class ManagerHandle:
    address: str
    ctx: ManagerContext
    server: RunningServer
    admin_access_key: str
    admin_secret_key: str
    admin_token: str

    def channel(self) -> grpc.aio.Channel:
        return grpc.aio.insecure_channel(self.address)


@pytest.fixture(scope="session")
async def manager(stack) -> AsyncIterator[ManagerHandle]:  # type: ignore[no-untyped-def]
    config = ManagerConfig(
        grpc_port=0,
        metrics_port=0,
        db=DatabaseConfig(url=stack.pg_dsn),
        redis=RedisConfig(url=stack.redis_url),
    )
    await upgrade_async(config.db.url)
    ctx = ManagerContext.create(config)
    ctx.start_background()
    async with ctx.sessions() as db, db.begin():
        boot = await bootstrap(db, password=ADMIN_PASSWORD)
    assert boot.access_key and boot.secret_key
    running = await start_server(manager_server_spec(ctx))
    address = f"127.0.0.1:{running.grpc_port}"
    async with grpc.aio.insecure_channel(address) as channel:
        login = await auth_pb2_grpc.AuthServiceStub(channel).Login(
            auth_pb2.LoginRequest(username="admin", password=ADMIN_PASSWORD)
        )
    handle = ManagerHandle(address, ctx, running, boot.access_key, boot.secret_key, login.token)
    try:
        yield handle
    finally:
        await running.stop()
        await ctx.close()


@pytest.fixture
async def channel(manager: ManagerHandle) -> AsyncIterator[grpc.aio.Channel]:
    async with manager.channel() as ch:
        yield ch


def bearer(token: str) -> list[tuple[str, str]]:
    return [("authorization", f"Bearer {token}")]


def unique(prefix: str) -> str:
    return f"{prefix}-{uuid.uuid4().hex[:8]}"
