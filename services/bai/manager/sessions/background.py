"""The session lifecycle's background tasks: the scheduling loop and the sweeper."""

from __future__ import annotations

import asyncio

from redis.asyncio import Redis
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from bai.manager.agents.pool import AgentClientPool
from bai.manager.config import ManagerConfig
from bai.manager.sessions import sweeper
from bai.manager.sessions.scheduling_loop import SchedulingLoop
from bai.manager.sessions.snapshot_builder import SchedulerDefaults


def session_tasks(
    sessions: async_sessionmaker[AsyncSession],
    redis: Redis,
    pool: AgentClientPool,
    config: ManagerConfig,
) -> list[asyncio.Task[None]]:
    settings = config.scheduler
    defaults = SchedulerDefaults(
        strict_fifo=settings.strict_fifo, max_sessions_per_round=settings.max_sessions_per_round
    )
    loop = SchedulingLoop(
        sessions,
        redis,
        pool,
        defaults,
        tick_seconds=settings.tick_seconds,
        registries=config.registries,
    )
    sweep = sweeper.run_forever(
        sessions, redis, pool, settings.sweep_seconds, registries=config.registries
    )
    return [asyncio.create_task(loop.run()), asyncio.create_task(sweep)]
