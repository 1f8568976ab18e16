"""The manager's shared resources, built once at start-up and handed to servicers."""

from __future__ import annotations

import asyncio
import contextlib
from dataclasses import dataclass, field

from redis.asyncio import Redis
from sqlalchemy.ext.asyncio import AsyncEngine, AsyncSession, async_sessionmaker

from bai.common.pg_engine import create_pg_engine
from bai.manager import redis_client
from bai.manager.agents import commands, liveness
from bai.manager.agents.event_batcher import EventBatcher
from bai.manager.agents.pool import AgentClientPool
from bai.manager.agents.streams import AgentStreams
from bai.manager.apps import circuit_cleanup
from bai.manager.apps.coordinator import CoordinatorClient
from bai.manager.apps.session_apps import SessionApps
from bai.manager.audit_trail import AuditTrail
from bai.manager.auth.authenticator import Authenticator
from bai.manager.auth.credentials import CredentialLookup
from bai.manager.auth.usage import flush_forever
from bai.manager.bgtasks import BackgroundTasks
from bai.manager.config import ManagerConfig
from bai.manager.sessions.background import session_tasks
from bai.manager.vfolders.storage_client import StorageProxies


@dataclass
class ManagerContext:
    config: ManagerConfig
    engine: AsyncEngine
    sessions: async_sessionmaker[AsyncSession]
    redis: Redis
    authenticator: Authenticator
    lookup: CredentialLookup
    _tasks: list[asyncio.Task[None]] = field(default_factory=list)
    # Registry streams held by this replica, and clients for calls to agents.
    agent_streams: AgentStreams = field(default_factory=AgentStreams)
    agent_pool: AgentClientPool = field(init=False)
    coordinator: CoordinatorClient = field(init=False)
    apps: SessionApps = field(init=False)
    # Storage proxies (StorageService clients) and background tasks (clones, ...).
    storage: StorageProxies = field(init=False)
    tasks: BackgroundTasks = field(init=False)
    # Applies the registry streams' event bursts, several streams' per transaction.
    event_batcher: EventBatcher = field(init=False)
    # Writes the write RPCs' audit log entries, several calls' per INSERT.
    audit: AuditTrail = field(init=False)

    def __post_init__(self) -> None:
        self.agent_pool = AgentClientPool(self.sessions, self.config.agent.internal_token)
        self.storage = StorageProxies(lambda: self.config.storage)
        self.tasks = BackgroundTasks(self.redis)
        self.event_batcher = EventBatcher(self.sessions, self.redis)
        self.audit = AuditTrail(self.engine)
        proxy = self.config.app_proxy
        self.coordinator = CoordinatorClient(
            proxy.coordinator_address, proxy.internal_token, proxy.call_timeout
        )
        self.apps = SessionApps(
            self.sessions,
            self.agent_pool,
            self.coordinator,
            proxy.token_ttl_seconds,
            proxy.start_timeout,
        )

    @classmethod
    def create(cls, config: ManagerConfig) -> ManagerContext:
        engine = create_pg_engine(config.db.url, config.db.pool_size)
        sessions = async_sessionmaker(engine, expire_on_commit=False)
        redis = redis_client.Redis.from_url(config.redis.url)
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
            asyncio.create_task(liveness.run_forever(self.sessions, self.redis, self.config.agent)),
            asyncio.create_task(commands.relay_forever(self.redis, self.agent_streams)),
        ]
        if self.config.app_proxy.coordinator_address:
            self._tasks.append(
                asyncio.create_task(
                    circuit_cleanup.run_forever(self.sessions, self.redis, self.coordinator)
                )
            )
        if self.config.scheduler.enabled:
            self._tasks.extend(
                session_tasks(self.sessions, self.redis, self.agent_pool, self.config)
            )

    async def close(self) -> None:
        for task in self._tasks:
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task
        with contextlib.suppress(Exception):
            await self.authenticator.usage.flush(self.sessions)
        await self.event_batcher.close()
        await self.audit.close()
        await self.agent_pool.close()
        await self.coordinator.close()
        await self.tasks.stop()
        await self.storage.close()
        await self.redis.aclose()
        await self.engine.dispose()
