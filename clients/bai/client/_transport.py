"""The one place where calls go out: credentials, timeouts, retries, error mapping.

The generated service facades (``_generated.py``) hand each call to a transport
together with the stub's multi-callable and the full method name (which the
keypair signature covers). ``SyncTransport`` wraps a ``grpc.Channel``,
``AsyncTransport`` a ``grpc.aio.Channel``.
"""

# The timeout parameters are gRPC deadlines passed through, not asyncio timeouts.
# ruff: noqa: ASYNC109

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterable, AsyncIterator, Iterable, Iterator, Sequence
from typing import TypeVar

import grpc
import grpc.aio

from bai.client import errors
from bai.client.credentials import Credentials
from bai.client.retry import NO_RETRY, RetryPolicy

Req = TypeVar("Req")
Resp = TypeVar("Resp")

Metadata = Sequence[tuple[str, str | bytes]]

DEFAULT_TIMEOUT = 30.0


class _Base:
    def __init__(
        self,
        credentials: Credentials | None,
        retry: RetryPolicy | None,
        timeout: float | None,
    ) -> None:
        self.credentials = credentials
        self.retry_policy = retry or RetryPolicy()
        self.timeout = timeout

    def call_metadata(self, method: str, extra: Metadata) -> tuple[tuple[str, str | bytes], ...]:
        """Fresh credentials metadata (new nonce) plus the caller's own entries."""
        own: list[tuple[str, str | bytes]] = []
        if self.credentials is not None:
            own.extend(self.credentials.metadata(method))
        return (*own, *extra)

    def policy(self, idempotent: bool, retry: bool | None) -> RetryPolicy:
        allowed = idempotent if retry is None else retry
        return self.retry_policy if allowed else NO_RETRY

    def unary_timeout(self, timeout: float | None) -> float | None:
        return self.timeout if timeout is None else timeout

    @staticmethod
    def next_wait(
        policy: RetryPolicy, exc: grpc.RpcError, attempt: int, started: float
    ) -> float | None:
        """Seconds to wait before retrying, or None when the error is final."""
        code = errors.from_rpc_error(exc).code
        if not policy.should_retry(code, attempt):
            return None
        wait = policy.backoff(attempt)
        if policy.deadline is not None and time.monotonic() - started + wait > policy.deadline:
            return None
        return wait


class SyncTransport(_Base):
    """Blocking calls over a ``grpc.Channel``."""

    def __init__(
        self,
        channel: grpc.Channel,
        credentials: Credentials | None = None,
        *,
        retry: RetryPolicy | None = None,
        timeout: float | None = DEFAULT_TIMEOUT,
    ) -> None:
        super().__init__(credentials, retry, timeout)
        self.channel = channel

    def unary(
        self,
        call: grpc.UnaryUnaryMultiCallable[Req, Resp],
        method: str,
        request: Req,
        *,
        idempotent: bool,
        timeout: float | None = None,
        metadata: Metadata = (),
        retry: bool | None = None,
    ) -> Resp:
        policy = self.policy(idempotent, retry)
        started = time.monotonic()
        attempt = 0
        while True:
            attempt += 1
            try:
                return call(
                    request,
                    timeout=self.unary_timeout(timeout),
                    metadata=self.call_metadata(method, metadata),
                )
            except grpc.RpcError as exc:
                wait = self.next_wait(policy, exc, attempt, started)
                if wait is None:
                    raise errors.from_rpc_error(exc) from exc
            time.sleep(wait)

    def server_stream(
        self,
        call: grpc.UnaryStreamMultiCallable[Req, Resp],
        method: str,
        request: Req,
        *,
        idempotent: bool,
        timeout: float | None = None,
        metadata: Metadata = (),
        retry: bool | None = None,
    ) -> Iterator[Resp]:
        """Yields the stream's messages; retried only until the first message arrives."""
        policy = self.policy(idempotent, retry)
        started = time.monotonic()
        attempt = 0
        while True:
            attempt += 1
            received = False
            stream = call(request, timeout=timeout, metadata=self.call_metadata(method, metadata))
            try:
                for item in stream:
                    received = True
                    yield item
                return
            except grpc.RpcError as exc:
                wait = None if received else self.next_wait(policy, exc, attempt, started)
                if wait is None:
                    raise errors.from_rpc_error(exc) from exc
            finally:
                stream.cancel()
            time.sleep(wait)

    def client_stream(
        self,
        call: grpc.StreamUnaryMultiCallable[Req, Resp],
        method: str,
        requests: Iterable[Req],
        *,
        timeout: float | None = None,
        metadata: Metadata = (),
    ) -> Resp:
        try:
            return call(
                iter(requests), timeout=timeout, metadata=self.call_metadata(method, metadata)
            )
        except grpc.RpcError as exc:
            raise errors.from_rpc_error(exc) from exc

    def bidi_stream(
        self,
        call: grpc.StreamStreamMultiCallable[Req, Resp],
        method: str,
        requests: Iterable[Req],
        *,
        timeout: float | None = None,
        metadata: Metadata = (),
    ) -> Iterator[Resp]:
        stream = call(
            iter(requests), timeout=timeout, metadata=self.call_metadata(method, metadata)
        )
        try:
            yield from stream
        except grpc.RpcError as exc:
            raise errors.from_rpc_error(exc) from exc
        finally:
            stream.cancel()

    def close(self) -> None:
        self.channel.close()


class AsyncTransport(_Base):
    """Awaitable calls over a ``grpc.aio.Channel``."""

    def __init__(
        self,
        channel: grpc.aio.Channel,
        credentials: Credentials | None = None,
        *,
        retry: RetryPolicy | None = None,
        timeout: float | None = DEFAULT_TIMEOUT,
    ) -> None:
        super().__init__(credentials, retry, timeout)
        self.channel = channel

    async def unary(
        self,
        call: grpc.aio.UnaryUnaryMultiCallable[Req, Resp],
        method: str,
        request: Req,
        *,
        idempotent: bool,
        timeout: float | None = None,
        metadata: Metadata = (),
        retry: bool | None = None,
    ) -> Resp:
        policy = self.policy(idempotent, retry)
        started = time.monotonic()
        attempt = 0
        while True:
            attempt += 1
            try:
                return await call(
                    request,
                    timeout=self.unary_timeout(timeout),
                    metadata=self.call_metadata(method, metadata),
                )
            except grpc.RpcError as exc:
                wait = self.next_wait(policy, exc, attempt, started)
                if wait is None:
                    raise errors.from_rpc_error(exc) from exc
            await asyncio.sleep(wait)

    async def server_stream(
        self,
        call: grpc.aio.UnaryStreamMultiCallable[Req, Resp],
        method: str,
        request: Req,
        *,
        idempotent: bool,
        timeout: float | None = None,
        metadata: Metadata = (),
        retry: bool | None = None,
    ) -> AsyncIterator[Resp]:
        """Yields the stream's messages; retried only until the first message arrives."""
        policy = self.policy(idempotent, retry)
        started = time.monotonic()
        attempt = 0
        while True:
            attempt += 1
            received = False
            stream = call(request, timeout=timeout, metadata=self.call_metadata(method, metadata))
            try:
                async for item in stream:
                    received = True
                    yield item
                return
            except grpc.RpcError as exc:
                wait = None if received else self.next_wait(policy, exc, attempt, started)
                if wait is None:
                    raise errors.from_rpc_error(exc) from exc
            finally:
                stream.cancel()
            await asyncio.sleep(wait)

    async def client_stream(
        self,
        call: grpc.aio.StreamUnaryMultiCallable[Req, Resp],
        method: str,
        requests: AsyncIterable[Req] | Iterable[Req],
        *,
        timeout: float | None = None,
        metadata: Metadata = (),
    ) -> Resp:
        try:
            return await call(
                requests,  # type: ignore[arg-type]  # grpc.aio accepts any (async) iterable
                timeout=timeout,
                metadata=self.call_metadata(method, metadata),
            )
        except grpc.RpcError as exc:
            raise errors.from_rpc_error(exc) from exc

    async def bidi_stream(
        self,
        call: grpc.aio.StreamStreamMultiCallable[Req, Resp],
        method: str,
        requests: AsyncIterable[Req] | Iterable[Req],
        *,
        timeout: float | None = None,
        metadata: Metadata = (),
    ) -> AsyncIterator[Resp]:
        stream = call(
            requests,  # type: ignore[arg-type]  # grpc.aio accepts any (async) iterable
            timeout=timeout,
            metadata=self.call_metadata(method, metadata),
        )
        try:
            async for item in stream:
                yield item
        except grpc.RpcError as exc:
            raise errors.from_rpc_error(exc) from exc
        finally:
            stream.cancel()

    async def close(self) -> None:
        await self.channel.close()
