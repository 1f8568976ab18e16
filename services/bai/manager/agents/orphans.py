"""Kernels an agent runs that the manager has ended: the agent is told to remove them.

A destroy can overtake a dispatch: DestroyKernel reaches the agent first (found
= false, so the manager ends the kernel), then the CreateKernels sent earlier
starts the container. Reports about ended kernels are dropped by the state
machine (terminal is final), so without this the container would run and hold
the agent's slots until the agent registered again. Kernel events that say a
kernel is coming up, and the kernel ids in heartbeats, are checked here; a
kernel the manager does not know, has ended, or placed on another agent is
destroyed with reason not-found-in-manager.
"""

from __future__ import annotations

import asyncio
import logging
import uuid
from collections.abc import Coroutine, Iterable
from typing import Any

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from bai.api.agent.v1 import agent_pb2
from bai.api.common.v1 import session_pb2
from bai.common.errors import BaiError
from bai.manager.agents.pool import AgentClientPool
from bai.manager.db.compute import KernelRow
from bai.manager.sessions import lifecycle

log = logging.getLogger(__name__)


async def not_live_here(db: AsyncSession, agent_id: str, kernel_ids: Iterable[str]) -> list[str]:
    """Of `kernel_ids`, those the manager does not have live on `agent_id`."""
    wanted = {k for k in kernel_ids if _uuid(k) is not None}
    if not wanted:
        return []
    rows = await db.execute(
        select(KernelRow.id, KernelRow.agent_id, KernelRow.status).where(
            KernelRow.id.in_([uuid.UUID(k) for k in wanted])
        )
    )
    live = {
        str(row.id)
        for row in rows
        if row.agent_id == agent_id and row.status not in lifecycle.KERNEL_TERMINAL
    }
    return sorted(wanted - live)


def _uuid(value: str) -> uuid.UUID | None:
    try:
        return uuid.UUID(value)
    except ValueError:
        return None


class OrphanReaper:
    """Checks kernel ids reported by one agent and destroys those not live there."""

    def __init__(
        self, sessions: async_sessionmaker[AsyncSession], pool: AgentClientPool, agent_id: str
    ) -> None:
        self._sessions = sessions
        self._pool = pool
        self._agent_id = agent_id
        self._destroying: set[str] = set()
        self._tasks: set[asyncio.Task[None]] = set()

    def check(self, kernel_ids: Iterable[str]) -> None:
        """Look the kernels up (in a task of its own) and destroy those not live here."""
        ids = [k for k in kernel_ids if k not in self._destroying]
        if ids:
            self._spawn(self._reap(ids))

    def destroy(self, kernel_ids: Iterable[str]) -> None:
        """Destroy kernels already known not to be live here (in a task of its own)."""
        ids = [k for k in kernel_ids if k not in self._destroying]
        if ids:
            self._spawn(self._destroy(ids))

    def _spawn(self, work: Coroutine[Any, Any, None]) -> None:
        task = asyncio.create_task(work)
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    async def _reap(self, kernel_ids: list[str]) -> None:
        try:
            async with self._sessions() as db:
                orphans = await not_live_here(db, self._agent_id, kernel_ids)
        except Exception as exc:  # the next report checks again
            log.warning("checking kernels of agent %s failed: %s", self._agent_id, exc)
            return
        await self._destroy(orphans)

    async def _destroy(self, orphans: list[str]) -> None:
        for kernel_id in orphans:
            if kernel_id in self._destroying:
                continue
            self._destroying.add(kernel_id)
            log.warning(
                "agent %s runs kernel %s that the manager has ended; destroying it",
                self._agent_id,
                kernel_id,
            )
            request = agent_pb2.DestroyKernelRequest(
                kernel_id=kernel_id,
                reason=session_pb2.LIFECYCLE_REASON_NOT_FOUND_IN_MANAGER,
                forced=True,
            )
            try:
                await self._pool.call(self._agent_id, "DestroyKernel", request)
            except BaiError as exc:
                log.warning("destroying orphan %s failed: %s", kernel_id, exc.message)
            finally:
                self._destroying.discard(kernel_id)
