"""Server streams through the transports: retried only before the first message."""

from __future__ import annotations

from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import grpc
import pytest

from bai.api.manager.v1 import auth_pb2
from bai.client import KeypairCredentials, RetryPolicy, errors
from bai.client._transport import AsyncTransport, SyncTransport
from bai.common import signing
from tests.client.fakes import ACCESS_KEY, SECRET_KEY

METHOD = "/test.Watcher/Watch"
FAST = RetryPolicy(initial_backoff=0.01, max_backoff=0.02)


class Watcher:
    """Streams three identities; fails the first ``fail_before`` calls up front and the
    calls listed in ``fail_after`` after the first message."""

    def __init__(self, fail_before: int = 0, fail_after: bool = False) -> None:
        self.fail_before = fail_before
        self.fail_after = fail_after
        self.calls = 0
        self.signed = True

    def watch(self, request: Any, context: grpc.ServicerContext) -> Iterator[Any]:
        self.calls += 1
        md = dict(context.invocation_metadata())
        self.signed &= signing.signature_matches(
            SECRET_KEY, METHOD, md[signing.TIMESTAMP], md[signing.NONCE], md[signing.SIGNATURE]
        )
        if self.calls <= self.fail_before:
            context.abort(grpc.StatusCode.UNAVAILABLE, "later")
        for i in range(3):
            yield auth_pb2.WhoAmIResponse(username=f"u{i}")
            if self.fail_after:
                context.abort(grpc.StatusCode.UNAVAILABLE, "gone")


@pytest.fixture
def watcher() -> Iterator[tuple[Watcher, str]]:
    impl = Watcher()
    handler = grpc.method_handlers_generic_handler(
        "test.Watcher",
        {
            "Watch": grpc.unary_stream_rpc_method_handler(
                impl.watch,
                request_deserializer=auth_pb2.WhoAmIRequest.FromString,
                response_serializer=auth_pb2.WhoAmIResponse.SerializeToString,
            )
        },
    )
    server = grpc.server(ThreadPoolExecutor(max_workers=4))
    server.add_generic_rpc_handlers((handler,))
    port = server.add_insecure_port("127.0.0.1:0")
    server.start()
    try:
        yield impl, f"127.0.0.1:{port}"
    finally:
        server.stop(None).wait()


def _kw() -> dict[str, Any]:
    return {
        "request_serializer": auth_pb2.WhoAmIRequest.SerializeToString,
        "response_deserializer": auth_pb2.WhoAmIResponse.FromString,
    }


def test_sync_stream_retries_before_first_message(watcher: tuple[Watcher, str]) -> None:
    impl, address = watcher
    impl.fail_before = 2
    with grpc.insecure_channel(address) as channel:
        t = SyncTransport(channel, KeypairCredentials(ACCESS_KEY, SECRET_KEY), retry=FAST)
        call = channel.unary_stream(METHOD, **_kw())
        got = [
            r.username
            for r in t.server_stream(call, METHOD, auth_pb2.WhoAmIRequest(), idempotent=True)
        ]
    assert got == ["u0", "u1", "u2"] and impl.calls == 3 and impl.signed


def test_sync_stream_is_not_retried_after_a_message(watcher: tuple[Watcher, str]) -> None:
    impl, address = watcher
    impl.fail_after = True
    got = []
    with grpc.insecure_channel(address) as channel:
        t = SyncTransport(channel, KeypairCredentials(ACCESS_KEY, SECRET_KEY), retry=FAST)
        call = channel.unary_stream(METHOD, **_kw())
        with pytest.raises(errors.Unavailable):
            for r in t.server_stream(call, METHOD, auth_pb2.WhoAmIRequest(), idempotent=True):
                got.append(r.username)
    assert got == ["u0"] and impl.calls == 1


async def test_async_stream_retries_before_first_message(watcher: tuple[Watcher, str]) -> None:
    impl, address = watcher
    impl.fail_before = 1
    async with grpc.aio.insecure_channel(address) as channel:
        t = AsyncTransport(channel, KeypairCredentials(ACCESS_KEY, SECRET_KEY), retry=FAST)
        call = channel.unary_stream(METHOD, **_kw())
        got = [
            r.username
            async for r in t.server_stream(call, METHOD, auth_pb2.WhoAmIRequest(), idempotent=True)
        ]
    assert got == ["u0", "u1", "u2"] and impl.calls == 2 and impl.signed
