"""The manager's shared resources, built once at start-up and handed to servicers."""

from __future__ import annotations

import asyncio
import contextlib
from dataclasses import dataclass, field

from redis.asyncio import Redis
from sqlalchemy.ext.asyncio import (
    AsyncEngine,
    AsyncSession,
    async_sessionmaker,
    create_async_engine,
)

from bai.manager.auth.authenticator import Authenticator
from bai.manager.auth.credentials import CredentialLookup
from bai.manager.auth.usage import flush_forever
from bai.manager.config import ManagerConfig


@dataclass
class ManagerContext:
    config: ManagerConfig
    engine: AsyncEngine
    sessions: async_sessionmaker[AsyncSession]
    redis: Redis
    authenticator: Authenticator
    lookup: CredentialLookup
    _tasks: list[asyncio.Task[None]] = field(default_factory=list)

    @classmethod
    def create(cls, config: ManagerConfig) -> ManagerContext:
        engine = create_async_engine(
            config.db.url, pool_size=config.db.pool_size, pool_pre_ping=True
        )
        sessions = async_sessionmaker(engine, expire_on_commit=False)
        redis = Redis.from_url(config.redis.url)
        lookup = CredentialLookup(sessions)
        authenticator = Authenticator(lookup, redis, config.auth)
        return cls(config, engine, sessions, redis, authenticator, lookup)

    def start_background(self) -> None:
        """Start the credential change feed and the keypair usage flusher."""
        self._tasks = [
            asyncio.create_task(self.authenticator.changes.run()),
            asyncio.create_task(
                flush_forever(
                    self.authenticator.usage, self.sessions, self.config.auth.usage_flush_seconds
                )
            ),
        ]

    async def close(self) -> None:
        for task in self._tasks:
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task
        with contextlib.suppress(Exception):
            await self.authenticator.usage.flush(self.sessions)
        await self.redis.aclose()
        await self.engine.dispose()
