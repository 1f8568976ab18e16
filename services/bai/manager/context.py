"""The manager's shared resources, built once at start-up and handed to servicers."""

from __future__ import annotations

from dataclasses import dataclass

from redis.asyncio import Redis
from sqlalchemy.ext.asyncio import (
    AsyncEngine,
    AsyncSession,
    async_sessionmaker,
    create_async_engine,
)

from bai.manager.auth.authenticator import Authenticator
from bai.manager.auth.credentials import CredentialLookup
from bai.manager.config import ManagerConfig


@dataclass
class ManagerContext:
    config: ManagerConfig
    engine: AsyncEngine
    sessions: async_sessionmaker[AsyncSession]
    redis: Redis
    authenticator: Authenticator
    lookup: CredentialLookup

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

    async def close(self) -> None:
        await self.redis.aclose()
        await self.engine.dispose()
