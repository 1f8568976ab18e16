"""The edge of every coordinator RPC: the internal token, error mapping and metrics."""

from __future__ import annotations

import functools
import time
from collections.abc import Awaitable, Callable
from typing import Any, Protocol, TypeVar

import grpc
from sqlalchemy.exc import InterfaceError, OperationalError

from bai.common.errors import Unavailable
from bai.common.grpc_errors import to_grpc_status
from bai.common.metrics import rpc_observer
from bai.common.shared_secret import check_shared_secret, text_metadata

observe_rpc = rpc_observer("coordinator")

Req = TypeVar("Req")
Resp = TypeVar("Resp")
Context = grpc.aio.ServicerContext[Any, Any]


class Edge(Protocol):
    SERVICE: str
    internal_token: str
    shutting_down: Callable[[], bool]


def check_caller(internal_token: str, metadata: dict[str, str]) -> None:
    check_shared_secret(internal_token, metadata)


def _domain_error(exc: BaseException) -> BaseException:
    if isinstance(exc, OSError | OperationalError | InterfaceError):
        return Unavailable(f"the coordinator's database is unreachable: {type(exc).__name__}")
    return exc


def unary(
    fn: Callable[[Any, Req, Context], Awaitable[Resp]],
) -> Callable[..., Awaitable[Resp]]:
    @functools.wraps(fn)
    async def handler(self: Edge, request: Req, context: Context) -> Resp:
        method = f"/{self.SERVICE}/{fn.__name__}"
        started = time.perf_counter()
        try:
            metadata = text_metadata(context)
            check_caller(self.internal_token, metadata)
            if self.shutting_down():
                raise Unavailable("the coordinator is shutting down", reason="SHUTTING_DOWN")
            reply = await fn(self, request, context)
        except Exception as exc:
            status = to_grpc_status(_domain_error(exc))
            observe_rpc(method, status.code.name, time.perf_counter() - started)
            await context.abort_with_status(status)
            raise AssertionError("unreachable") from exc
        observe_rpc(method, "OK", time.perf_counter() - started)
        return reply

    return handler
