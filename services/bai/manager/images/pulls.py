"""Agents pulling an image ahead of use (ImageService.PullImage).

The manager picks the agents and asks each for CheckAndPullImage with the
registry's url and credentials; the pulls run on after the RPC returns.
Progress and the outcome reach the catalogue through the agents' ImageEvents
on their registry streams (PULL_FINISHED marks the image installed there).
"""

from __future__ import annotations

import asyncio
import logging
import uuid
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from bai.api.agent.v1 import agent_pb2
from bai.api.common.v1 import image_pb2
from bai.common.errors import BaiError, NotFound
from bai.manager.agents.image_catalog import image_not_found
from bai.manager.agents.pool import AgentClientPool, agent_errors
from bai.manager.db.compute import AgentRow, ImageRow
from bai.manager.db.policies import ScalingGroupRow
from bai.manager.images.registries import Registries, registry_ref

log = logging.getLogger(__name__)

PULL_TIMEOUT_SECONDS = 15 * 60


@dataclass(frozen=True)
class PullTargets:
    image: image_pb2.ImageRef
    agent_ids: list[str]


def image_ref(row: ImageRow, registries: Registries) -> image_pb2.ImageRef:
    """The ImageRef agents pull `row` with (credentials included: internal channel only)."""
    ref = image_pb2.ImageRef(
        canonical=row.canonical,
        architecture=row.architecture,
        digest=row.digest,
        is_local=row.is_local,
    )
    ref.registry.CopyFrom(registry_ref(registries, row.registry_name, row.canonical))
    return ref


def _missing(what: str, names: Sequence[str]) -> NotFound:
    return NotFound(
        f"{what} not found: {', '.join(sorted(names))}",
        reason="REFERENCE_NOT_FOUND",
        metadata={what.replace(" ", "_"): ",".join(sorted(names))},
    )


async def pull_targets(
    db: AsyncSession,
    registries: Registries,
    image_id: uuid.UUID,
    agent_ids: Sequence[str],
    scaling_group: str,
) -> PullTargets:
    """The image and the agents to pull it on; IMAGE_NOT_FOUND, REFERENCE_NOT_FOUND."""
    row = await db.get(ImageRow, image_id)
    if row is None or row.status != "ALIVE":
        raise image_not_found()
    if scaling_group and await db.get(ScalingGroupRow, scaling_group) is None:
        raise _missing("scaling group", [scaling_group])
    query = select(AgentRow.id).where(
        AgentRow.status == "ALIVE", AgentRow.architecture == row.architecture
    )
    if scaling_group:
        query = query.where(AgentRow.scaling_group == scaling_group)
    if agent_ids:
        known = set(
            (await db.execute(select(AgentRow.id).where(AgentRow.id.in_(agent_ids)))).scalars()
        )
        if unknown := set(agent_ids) - known:
            raise _missing("agent", list(unknown))
        query = query.where(AgentRow.id.in_(agent_ids))
    chosen = sorted((await db.execute(query)).scalars())
    return PullTargets(image_ref(row, registries), chosen)


async def pull_on_agent(
    pool: AgentClientPool, agent_id: str, ref: image_pb2.ImageRef, *, force: bool = False
) -> str:
    """Run one agent's CheckAndPullImage to its end; returns the outcome's name."""
    policy = image_pb2.IMAGE_PULL_POLICY_ALWAYS if force else image_pb2.IMAGE_PULL_POLICY_DIGEST
    request = agent_pb2.CheckAndPullImageRequest(image=ref, pull_policy=policy)
    request.timeout.FromSeconds(PULL_TIMEOUT_SECONDS)
    # grpc.aio stubs are typed as sync ones: Any, as in sessions/relay.py.
    stub: Any = await pool.stub(agent_id)
    outcome = "UNSPECIFIED"
    with agent_errors(agent_id):
        replies: Any = stub.CheckAndPullImage(
            request, metadata=pool.metadata(agent_id), timeout=PULL_TIMEOUT_SECONDS + 30
        )
        async for reply in replies:
            if reply.HasField("result"):
                outcome = agent_pb2.PullOutcome.Name(reply.result.outcome)
    return outcome.removeprefix("PULL_OUTCOME_")


class PullRunner:
    """Pulls started by PullImage, kept referenced until they end."""

    def __init__(self, pool: AgentClientPool) -> None:
        self._pool = pool
        self._running: set[asyncio.Task[None]] = set()

    def start(self, targets: PullTargets, *, force: bool = False) -> None:
        for agent_id in targets.agent_ids:
            task = asyncio.create_task(self._pull(agent_id, targets.image, force))
            self._running.add(task)
            task.add_done_callback(self._running.discard)

    async def _pull(self, agent_id: str, ref: image_pb2.ImageRef, force: bool) -> None:
        try:
            outcome = await pull_on_agent(self._pool, agent_id, ref, force=force)
        except BaiError as exc:
            log.warning("pulling %s on %s failed: %s", ref.canonical, agent_id, exc.message)
            return
        log.info("pulling %s on %s: %s", ref.canonical, agent_id, outcome.lower())

    async def wait(self) -> None:
        """Until every started pull has ended (tests, shutdown)."""
        while self._running:
            await asyncio.gather(*self._running, return_exceptions=True)
