"""The edge of every storage RPC: caller checks, error mapping, metrics.

Handlers are `async def Method(self, request, context)` wrapped with
`unary`, `server_streaming` or `client_streaming`. StorageService handlers
also check the manager's shared secret (`manager_only`).
"""

from __future__ import annotations

import functools
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Any, Protocol, TypeVar

import grpc
from grpc_status import rpc_status

from bai.common.errors import Unavailable
from bai.common.grpc_errors import to_rpc_status
from bai.common.metrics import rpc_observer
from bai.common.shared_secret import check_shared_secret, text_metadata
from bai.storage.context import StorageContext
from bai.storage.transfers.upload import ChecksumMismatch

MANAGER_TOKEN_HEADER = "x-bai-storage-auth-token"

observe_rpc = rpc_observer("storage")

Req = TypeVar("Req")
Resp = TypeVar("Resp")
Context = grpc.aio.ServicerContext[Any, Any]


class HasContext(Protocol):
    SERVICE: str
    ctx: StorageContext
    manager_only: bool


def check_manager(ctx: StorageContext, metadata: dict[str, str]) -> None:
    check_shared_secret(ctx.config.manager_token, metadata, MANAGER_TOKEN_HEADER)


def _check(owner: HasContext, context: Context) -> None:
    if owner.ctx.shutting_down:
        raise Unavailable("the storage proxy is shutting down", reason="SHUTTING_DOWN")
    if owner.manager_only:
        check_manager(owner.ctx, text_metadata(context))


def grpc_status_of(exc: BaseException) -> grpc.Status:
    _, status = to_rpc_status(exc)
    if isinstance(exc, ChecksumMismatch):
        # Not in the shared error tree (it has no DATA_LOSS class); the contract names it.
        status.code = grpc.StatusCode.DATA_LOSS.value[0]
    return rpc_status.to_status(status)  # type: ignore[no-any-return]


async def _fail(
    owner: HasContext, name: str, started: float, exc: Exception, context: Context
) -> None:
    status = grpc_status_of(exc)
    observe_rpc(f"/{owner.SERVICE}/{name}", status.code.name, time.perf_counter() - started)
    await context.abort_with_status(status)


def unary(
    fn: Callable[[Any, Req, Context], Awaitable[Resp]],
) -> Callable[..., Awaitable[Resp]]:
    @functools.wraps(fn)
    async def handler(self: HasContext, request: Req, context: Context) -> Resp:
        started = time.perf_counter()
        try:
            _check(self, context)
            reply = await fn(self, request, context)
        except Exception as exc:
            await _fail(self, fn.__name__, started, exc, context)
            raise AssertionError("unreachable") from exc
        observe_rpc(f"/{self.SERVICE}/{fn.__name__}", "OK", time.perf_counter() - started)
        return reply

    return handler


def server_streaming(
    fn: Callable[[Any, Req, Context], AsyncIterator[Resp]],
) -> Callable[..., AsyncIterator[Resp]]:
    @functools.wraps(fn)
    async def handler(self: HasContext, request: Req, context: Context) -> AsyncIterator[Resp]:
        started = time.perf_counter()
        try:
            _check(self, context)
            async for reply in fn(self, request, context):
                yield reply
        except Exception as exc:
            await _fail(self, fn.__name__, started, exc, context)
            return
        observe_rpc(f"/{self.SERVICE}/{fn.__name__}", "OK", time.perf_counter() - started)

    return handler


def client_streaming(
    fn: Callable[[Any, AsyncIterator[Req], Context], Awaitable[Resp]],
) -> Callable[..., Awaitable[Resp]]:
    @functools.wraps(fn)
    async def handler(self: HasContext, requests: AsyncIterator[Req], context: Context) -> Resp:
        started = time.perf_counter()
        try:
            _check(self, context)
            reply = await fn(self, requests, context)
        except Exception as exc:
            await _fail(self, fn.__name__, started, exc, context)
            raise AssertionError("unreachable") from exc
        observe_rpc(f"/{self.SERVICE}/{fn.__name__}", "OK", time.perf_counter() - started)
        return reply

    return handler
