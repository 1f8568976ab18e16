"""What the storage proxy's services share: config, volumes, background work."""

from __future__ import annotations

import asyncio
import logging
import secrets
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from bai.storage.config import StorageConfig
from bai.storage.volumes.pool import VolumePool

log = logging.getLogger("bai.storage")


@dataclass
class StorageContext:
    config: StorageConfig
    pool: VolumePool
    jwt_secret: str
    shutting_down: bool = False
    background: set[asyncio.Task[Any]] = field(default_factory=set)

    @classmethod
    def from_config(cls, config: StorageConfig) -> StorageContext:
        pool = VolumePool(config.volumes)
        pool.prepare()
        secret = config.jwt_secret
        if not secret:
            # Tokens then work with this process only (not after a restart).
            log.warning("no jwt_secret configured; transfer tokens use a per-process secret")
            secret = secrets.token_urlsafe(32)
        return cls(config=config, pool=pool, jwt_secret=secret)

    def in_background(self, fn: Callable[..., Any], *args: Any) -> None:
        """Run blocking `fn(*args)` in a thread, kept referenced until done."""
        task = asyncio.get_running_loop().create_task(asyncio.to_thread(fn, *args))
        self.background.add(task)
        task.add_done_callback(self._finished)

    def _finished(self, task: asyncio.Task[Any]) -> None:
        self.background.discard(task)
        if not task.cancelled() and task.exception() is not None:
            log.error("background work failed", exc_info=task.exception())

    async def drain(self) -> None:
        if self.background:
            await asyncio.gather(*self.background, return_exceptions=True)
