"""The edge of streaming manager RPCs: authenticate like unary calls, map errors.

`@server_stream` wraps an async-generator handler `(self, request, call)`
(the request is a message, or the request iterator for bidi calls). Errors
raised before or during the stream end it with the same google.rpc.Status
shapes as unary calls. `@client_stream` wraps a coroutine handler
`(self, requests, call)` that reads the request iterator and returns one reply.
"""

from __future__ import annotations

import asyncio
import functools
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Any

import grpc
from google.protobuf.message import Message
from redis.exceptions import RedisError
from sqlalchemy.exc import SQLAlchemyError

from bai.common.errors import FieldViolation, InvalidArgument, Unavailable
from bai.common.grpc_errors import to_grpc_status
from bai.common.shared_secret import text_metadata
from bai.common.text_fields import nul_fields
from bai.manager.api.rpc import Call, Servicer, observe_rpc

StreamHandler = Callable[[Any, Any, Call], AsyncIterator[Message]]
ClientStreamHandler = Callable[[Any, AsyncIterator[Any], Call], Awaitable[Message]]


def _failure(exc: Exception) -> BaseException:
    """What a handler's exception answers: dependency failures as UNAVAILABLE."""
    if isinstance(exc, SQLAlchemyError):
        return Unavailable("database unavailable")
    if isinstance(exc, RedisError):
        return Unavailable("session store unavailable")
    return exc


def server_stream() -> Callable[[StreamHandler], Callable[..., Any]]:
    def decorate(fn: StreamHandler) -> Callable[..., Any]:
        @functools.wraps(fn)
        async def handler(
            self: Servicer, request: Any, context: grpc.aio.ServicerContext[Any, Any]
        ) -> AsyncIterator[Message]:
            method = f"/{self.SERVICE}/{fn.__name__}"
            started = time.perf_counter()
            metadata = text_metadata(context)
            failure: BaseException | None = None
            status: grpc.Status | None = None
            code = grpc.StatusCode.OK
            try:
                principal = await self.ctx.authenticator.authenticate(
                    method, metadata, context.peer
                )
                if isinstance(request, Message):
                    bad_text = nul_fields(request)
                    if bad_text:
                        raise InvalidArgument(
                            [FieldViolation(f, "must not contain NUL characters") for f in bad_text]
                        )
                call = Call(method, principal, self.ctx, metadata)
                async for item in fn(self, request, call):
                    yield item
                return
            except asyncio.CancelledError:
                code = grpc.StatusCode.CANCELLED
                raise
            except Exception as exc:
                failure = _failure(exc)
            finally:
                if failure is not None:
                    status = to_grpc_status(failure)
                    code = status.code
                observe_rpc(method, code.name, time.perf_counter() - started)
            assert status is not None
            await context.abort_with_status(status)

        return handler

    return decorate


def client_stream() -> Callable[[ClientStreamHandler], Callable[..., Any]]:
    def decorate(fn: ClientStreamHandler) -> Callable[..., Any]:
        @functools.wraps(fn)
        async def handler(
            self: Servicer,
            requests: AsyncIterator[Any],
            context: grpc.aio.ServicerContext[Any, Any],
        ) -> Message:
            method = f"/{self.SERVICE}/{fn.__name__}"
            started = time.perf_counter()
            metadata = text_metadata(context)
            failure: BaseException | None = None
            status: grpc.Status | None = None
            code = grpc.StatusCode.OK
            try:
                principal = await self.ctx.authenticator.authenticate(
                    method, metadata, context.peer
                )
                return await fn(self, requests, Call(method, principal, self.ctx, metadata))
            except asyncio.CancelledError:
                code = grpc.StatusCode.CANCELLED
                raise
            except Exception as exc:
                failure = _failure(exc)
            finally:
                if failure is not None:
                    status = to_grpc_status(failure)
                    code = status.code
                observe_rpc(method, code.name, time.perf_counter() - started)
            assert status is not None
            await context.abort_with_status(status)
            raise AssertionError("unreachable")

        return handler

    return decorate
