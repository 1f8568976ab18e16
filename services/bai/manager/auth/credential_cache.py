"""An in-memory cache whose entries are only good under one credentials epoch.

The epoch is a Redis counter bumped by every change to users, keypairs,
projects or domains; callers read it in the same round trip as the nonce or
token, so an entry read under an older epoch is never served. A time limit
bounds staleness should the counter itself be lost (a Redis flush).
"""

from __future__ import annotations

import time
from collections.abc import Awaitable, Callable, Hashable
from typing import Generic, TypeVar

K = TypeVar("K", bound=Hashable)
V = TypeVar("V")

# What `peek` returns for a key never cached (None is a valid cached value).
MISSING = object()


class EpochCache(Generic[K, V]):
    def __init__(self, ttl_seconds: float, limit: int = 10_000) -> None:
        self._ttl = ttl_seconds
        self._limit = limit
        # key -> (value, epoch it was read under, monotonic time of reading)
        self._entries: dict[K, tuple[V, bytes | None, float]] = {}

    def peek(self, key: K) -> V | object:
        """The cached value regardless of freshness, or MISSING."""
        hit = self._entries.get(key)
        return MISSING if hit is None else hit[0]

    def fresh(self, key: K, epoch: bytes | None) -> bool:
        hit = self._entries.get(key)
        return hit is not None and hit[1] == epoch and time.monotonic() - hit[2] < self._ttl

    async def get(self, key: K, epoch: bytes | None, load: Callable[[K], Awaitable[V]]) -> V:
        hit = self._entries.get(key)
        if hit is not None and self.fresh(key, epoch):
            return hit[0]
        value = await load(key)
        self.put(key, value, epoch)
        return value

    def put(self, key: K, value: V, epoch: bytes | None) -> None:
        if len(self._entries) >= self._limit:
            self._entries.clear()
        self._entries[key] = (value, epoch, time.monotonic())

    def clear(self) -> None:
        self._entries.clear()
