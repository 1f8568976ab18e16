"""Calls to the storage proxies' StorageService (manager port 6022).

    proxies = StorageProxies(lambda: ctx.config.storage)
    reply = await proxies.call("local", "CreateVFolder", request)

Failures come back as bai errors with the proxy's reason: an unreachable
proxy is DEPENDENCY_UNAVAILABLE; anything else keeps the proxy's code,
reason and field violations (field names as the manager's requests spell
them).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import grpc
from google.protobuf.message import Message
from google.rpc import error_details_pb2, status_pb2

from bai.api.storage.v1 import storage_pb2_grpc
from bai.common import errors
from bai.common.peer_errors import error_from_peer, peer_reason
from bai.manager.config import StorageConfig, StorageProxyConfig

AUTH_HEADER = "x-bai-storage-auth-token"
# The proxy's request fields, as the manager's requests name them.
_FIELD_NAMES = {
    "relpaths": "paths",
    "relpath": "path",
    "source_relpath": "source_path",
    "target_relpath": "target_path",
    "subpath": "subpath",
}


@dataclass(frozen=True)
class HostRef:
    """A storage host "<proxy>:<volume>"."""

    proxy: str
    volume: str

    @classmethod
    def parse(cls, host: str) -> HostRef | None:
        proxy, sep, volume = host.partition(":")
        if not sep or not proxy or not volume or ":" in volume:
            return None
        return cls(proxy, volume)

    def __str__(self) -> str:
        return f"{self.proxy}:{self.volume}"


def _violations(exc: grpc.aio.AioRpcError) -> list[errors.FieldViolation]:
    for key, value in exc.trailing_metadata() or ():
        if key != "grpc-status-details-bin" or not isinstance(value, bytes):
            continue
        for detail in status_pb2.Status.FromString(value).details:
            bad = error_details_pb2.BadRequest()
            if detail.Unpack(bad):
                return [
                    errors.FieldViolation(_renamed(v.field), v.description)
                    for v in bad.field_violations
                ]
    return []


def _renamed(field: str) -> str:
    head, sep, rest = field.partition("[")
    return _FIELD_NAMES.get(head, head) + sep + rest


def error_from_proxy(proxy: str, exc: grpc.aio.AioRpcError) -> errors.BaiError:
    peer = f"storage proxy {proxy!r}"
    if exc.code() is grpc.StatusCode.UNAUTHENTICATED:
        # A wrong shared secret is the operator's problem, not the caller's.
        return errors.Unavailable(f"{peer} refused the manager's credentials: {exc.details()}")
    if exc.code() is grpc.StatusCode.INVALID_ARGUMENT:
        reason = peer_reason(exc) or None
        return errors.InvalidArgument(_violations(exc), reason=reason, message=exc.details())
    return error_from_peer(
        exc, unreachable_reason="DEPENDENCY_UNAVAILABLE", peer=peer, metadata={"proxy": proxy}
    )


def unknown_host(host: str) -> errors.FailedPrecondition:
    return errors.FailedPrecondition(
        f"storage host {host!r} does not exist",
        reason="REFERENCE_NOT_FOUND",
        metadata={"reference": "host", "host": host},
    )


class StorageProxies:
    """One channel per configured proxy; the config is read on every call so
    that a changed address is used at once."""

    def __init__(self, config: Callable[[], StorageConfig]) -> None:
        self._config = config
        self._channels: dict[str, grpc.aio.Channel] = {}

    def names(self) -> list[str]:
        return sorted(self._config().proxies)

    @property
    def default_host(self) -> str:
        return self._config().default_host

    def settings(self, proxy: str) -> StorageProxyConfig:
        found = self._config().proxies.get(proxy)
        if found is None:
            raise unknown_host(proxy)
        return found

    def _channel(self, address: str) -> grpc.aio.Channel:
        channel = self._channels.get(address)
        if channel is None:
            channel = grpc.aio.insecure_channel(address)
            self._channels[address] = channel
        return channel

    async def call(
        self, proxy: str, method: str, request: Message, *, deadline: bool = True
    ) -> Any:
        """Unary StorageService call; `deadline=False` for copies that take long."""
        settings = self.settings(proxy)
        stub = storage_pb2_grpc.StorageServiceStub(self._channel(settings.manager_address))
        try:
            return await getattr(stub, method)(
                request,
                metadata=[(AUTH_HEADER, settings.secret)],
                timeout=settings.call_timeout if deadline else None,
            )
        except grpc.aio.AioRpcError as exc:
            raise error_from_proxy(proxy, exc) from exc

    async def close(self) -> None:
        channels, self._channels = self._channels, {}
        for channel in channels.values():
            await channel.close()
