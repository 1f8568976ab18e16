"""``Client`` and ``AsyncClient``: a channel, credentials and one attribute per service."""

from __future__ import annotations

import os
from collections.abc import Mapping, Sequence
from types import TracebackType
from typing import Any

import grpc
import grpc.aio

from bai.api.manager.v1 import auth_pb2
from bai.client._generated import AsyncServices, SyncServices
from bai.client._transport import DEFAULT_TIMEOUT, AsyncTransport, SyncTransport
from bai.client.credentials import Credentials, KeypairCredentials, TokenCredentials
from bai.client.retry import RetryPolicy

DEFAULT_ADDRESS = "127.0.0.1:8090"
"""The Envoy gateway; the manager itself listens on 8091."""

ChannelOptions = Sequence[tuple[str, Any]]


def parse_address(address: str) -> tuple[str, bool]:
    """``host:port``, ``http://host:port`` or ``https://host:port`` -> (target, tls)."""
    tls = address.startswith("https://")
    target = address.removeprefix("https://").removeprefix("http://").rstrip("/")
    if ":" not in target.rsplit("]", 1)[-1]:
        target += ":443" if tls else ":80"
    return target, tls


def credentials_from_env(env: Mapping[str, str] | None = None) -> Credentials | None:
    """BAI_ACCESS_KEY + BAI_SECRET_KEY, else BAI_TOKEN, else None."""
    env = os.environ if env is None else env
    if env.get("BAI_ACCESS_KEY") and env.get("BAI_SECRET_KEY"):
        return KeypairCredentials(env["BAI_ACCESS_KEY"], env["BAI_SECRET_KEY"])
    if env.get("BAI_TOKEN"):
        return TokenCredentials(env["BAI_TOKEN"])
    return None


def _channel_credentials(
    tls: bool, given: grpc.ChannelCredentials | None
) -> grpc.ChannelCredentials | None:
    if given is not None:
        return given
    return grpc.ssl_channel_credentials() if tls else None


class Client(SyncServices):
    """Blocking client for the bai API.

    >>> with Client("127.0.0.1:8090", KeypairCredentials(ak, sk)) as client:
    ...     me = client.auth.who_am_i()
    ...     for domain in client.domains.iter_domains():
    ...         print(domain.name)

    ``timeout`` is the default per-call timeout for unary calls (seconds; None:
    none). ``retry`` sets how idempotent calls are retried on UNAVAILABLE.
    ``channel_credentials`` (or an ``https://`` address) selects TLS; pass
    ``channel`` to use a channel you built yourself.
    """

    def __init__(
        self,
        address: str = DEFAULT_ADDRESS,
        credentials: Credentials | None = None,
        *,
        timeout: float | None = DEFAULT_TIMEOUT,
        retry: RetryPolicy | None = None,
        channel_credentials: grpc.ChannelCredentials | None = None,
        channel: grpc.Channel | None = None,
        options: ChannelOptions = (),
    ) -> None:
        if channel is None:
            target, tls = parse_address(address)
            creds = _channel_credentials(tls, channel_credentials)
            channel = (
                grpc.secure_channel(target, creds, options=options)
                if creds is not None
                else grpc.insecure_channel(target, options=options)
            )
        self.address = address
        self._transport = SyncTransport(channel, credentials, retry=retry, timeout=timeout)
        super().__init__(self._transport)

    @classmethod
    def from_env(cls, **kwargs: Any) -> Client:
        """A client for BAI_ENDPOINT with BAI_ACCESS_KEY + BAI_SECRET_KEY or BAI_TOKEN."""
        address = os.environ.get("BAI_ENDPOINT", DEFAULT_ADDRESS)
        return cls(address, credentials_from_env(), **kwargs)

    @property
    def credentials(self) -> Credentials | None:
        return self._transport.credentials

    @credentials.setter
    def credentials(self, value: Credentials | None) -> None:
        self._transport.credentials = value

    def login(
        self, username: str, password: str, *, ttl_seconds: int = 0
    ) -> auth_pb2.LoginResponse:
        """Log in and use the issued bearer token for the following calls."""
        response = self.auth.login(username=username, password=password, ttl_seconds=ttl_seconds)
        self.credentials = TokenCredentials(response.token)
        return response

    def whoami(self) -> auth_pb2.WhoAmIResponse:
        return self.auth.who_am_i()

    def close(self) -> None:
        self._transport.close()

    def __enter__(self) -> Client:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()


class AsyncClient(AsyncServices):
    """asyncio client for the bai API (grpc.aio); the same surface as Client, awaited.

    >>> async with AsyncClient(credentials=TokenCredentials(token)) as client:
    ...     me = await client.auth.who_am_i()
    ...     async for user in client.users.iter_users(domain_name="default"):
    ...         print(user.username)
    """

    def __init__(
        self,
        address: str = DEFAULT_ADDRESS,
        credentials: Credentials | None = None,
        *,
        timeout: float | None = DEFAULT_TIMEOUT,
        retry: RetryPolicy | None = None,
        channel_credentials: grpc.ChannelCredentials | None = None,
        channel: grpc.aio.Channel | None = None,
        options: ChannelOptions = (),
    ) -> None:
        if channel is None:
            target, tls = parse_address(address)
            creds = _channel_credentials(tls, channel_credentials)
            channel = (
                grpc.aio.secure_channel(target, creds, options=options)
                if creds is not None
                else grpc.aio.insecure_channel(target, options=options)
            )
        self.address = address
        self._transport = AsyncTransport(channel, credentials, retry=retry, timeout=timeout)
        super().__init__(self._transport)

    @classmethod
    def from_env(cls, **kwargs: Any) -> AsyncClient:
        """A client for BAI_ENDPOINT with BAI_ACCESS_KEY + BAI_SECRET_KEY or BAI_TOKEN."""
        address = os.environ.get("BAI_ENDPOINT", DEFAULT_ADDRESS)
        return cls(address, credentials_from_env(), **kwargs)

    @property
    def credentials(self) -> Credentials | None:
        return self._transport.credentials

    @credentials.setter
    def credentials(self, value: Credentials | None) -> None:
        self._transport.credentials = value

    async def login(
        self, username: str, password: str, *, ttl_seconds: int = 0
    ) -> auth_pb2.LoginResponse:
        """Log in and use the issued bearer token for the following calls."""
        response = await self.auth.login(
            username=username, password=password, ttl_seconds=ttl_seconds
        )
        self.credentials = TokenCredentials(response.token)
        return response

    async def whoami(self) -> auth_pb2.WhoAmIResponse:
        return await self.auth.who_am_i()

    async def close(self) -> None:
        await self._transport.close()

    async def __aenter__(self) -> AsyncClient:
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await self.close()
