"""The liveness sweeper: agents silent for agent_lost_timeout become LOST and
their live kernels end with reason agent-lost (slots go back via transitions);
so do the kernels of an agent that shut down cleanly and stayed away as long.

Safe with several manager replicas: the status flip is one conditional
UPDATE ... RETURNING, so each agent is flipped by exactly one sweep, and the
kernel step is idempotent under the session locks (terminal is final). The
kernel step also picks up kernels of agents that are already LOST, so a sweep
that died half-way is finished by the next one.
"""

from __future__ import annotations

import asyncio
import logging
import uuid
from collections import defaultdict
from datetime import UTC, datetime, timedelta

from redis.asyncio import Redis
from redis.exceptions import RedisError
from sqlalchemy import and_, or_, select, update
from sqlalchemy.exc import SQLAlchemyError
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from bai.manager.agents.kernel_updates import end_kernels
from bai.manager.agents.registry import CONNECTED
from bai.manager.config import AgentConfig
from bai.manager.db.compute import AgentRow, KernelRow
from bai.manager.sessions import lifecycle

log = logging.getLogger(__name__)


async def mark_lost(
    sessions: async_sessionmaker[AsyncSession], lost_after: timedelta, now: datetime
) -> list[str]:
    """Flip connected agents whose last heartbeat is older than `lost_after`; returns their ids."""
    deadline = now - lost_after
    silent = or_(
        AgentRow.last_heartbeat_at < deadline,
        and_(AgentRow.last_heartbeat_at.is_(None), AgentRow.first_contact < deadline),
    )
    async with sessions() as db, db.begin():
        rows = await db.execute(
            update(AgentRow)
            .where(AgentRow.status.in_(CONNECTED), silent)
            .values(status="LOST", status_changed_at=now, lost_at=now)
            .returning(AgentRow.id)
        )
        return sorted(r.id for r in rows)


async def end_kernels_of_lost_agents(
    sessions: async_sessionmaker[AsyncSession],
    redis: Redis,
    now: datetime,
    lost_after: timedelta = timedelta(0),
) -> int:
    """End every live kernel placed on a LOST agent, or on one that shut down
    cleanly (TERMINATED, kernels left running) and has not come back within
    `lost_after` (reason agent-lost)."""
    gone = or_(
        AgentRow.status == "LOST",
        and_(AgentRow.status == "TERMINATED", AgentRow.lost_at < now - lost_after),
    )
    async with sessions() as db:
        rows = await db.execute(
            select(KernelRow.id, KernelRow.session_id)
            .join(AgentRow, AgentRow.id == KernelRow.agent_id)
            .where(gone, KernelRow.status.not_in(lifecycle.KERNEL_TERMINAL))
        )
        by_session: dict[uuid.UUID, list[uuid.UUID]] = defaultdict(list)
        for row in rows:
            by_session[row.session_id].append(row.id)
    return await end_kernels(
        sessions,
        redis,
        by_session,
        "TERMINATED",
        "agent-lost",
        now,
        message="the agent stopped sending heartbeats",
    )


async def sweep(
    sessions: async_sessionmaker[AsyncSession],
    redis: Redis,
    lost_after: timedelta,
    now: datetime,
) -> list[str]:
    """One round: returns the agents that became LOST in it."""
    lost = await mark_lost(sessions, lost_after, now)
    if lost:
        log.warning("agents lost (no heartbeat for %s): %s", lost_after, ", ".join(lost))
    ended = await end_kernels_of_lost_agents(sessions, redis, now, lost_after)
    if ended:
        log.warning("%d kernels ended with their lost agents", ended)
    return lost


async def run_forever(
    sessions: async_sessionmaker[AsyncSession], redis: Redis, config: AgentConfig
) -> None:
    lost_after = timedelta(seconds=config.agent_lost_timeout)
    while True:
        try:
            await sweep(sessions, redis, lost_after, datetime.now(UTC))
        except (SQLAlchemyError, RedisError, OSError) as exc:
            # A dependency outage must not end the sweeper; the next round retries.
            log.warning("liveness sweep failed: %s", exc)
        except Exception:
            log.exception("liveness sweep failed")
        await asyncio.sleep(config.liveness_sweep_interval)
