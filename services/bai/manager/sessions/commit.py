"""Commit a session's main kernel to a customized image (CommitSession).

Everything that can be refused is checked before the background task starts:
the caller may change the session (owner, domain admin, superadmin; monitors
only read), the session and its main kernel are RUNNING, the name and tag are
valid Docker ones, and the caller has room under their user policy's
max_customized_image_count (0: unlimited; DELETED images do not count). The
task asks the main kernel's agent for CommitKernel, then records the image as
ALIVE and local to that agent, owned by the caller; ImageService lists it with
`customized_only`. Retries with the same request_id get the same task (the
RPC layer replays the reply).

The image is named bai.local/customized/<owner uuid hex>/<name>:<tag>, so
that two users' images of one name never collide.
"""

from __future__ import annotations

import re
import uuid
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import func, select
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from bai.api.agent.v1 import agent_pb2
from bai.api.common.v1 import image_pb2
from bai.common.errors import (
    FailedPrecondition,
    FieldViolation,
    InvalidArgument,
    ResourceExhausted,
    Unavailable,
)
from bai.common.image_refs import TAG
from bai.manager.agents.images import ReportedImage, image_key, upsert_reported
from bai.manager.agents.pool import AgentClientPool, agent_errors
from bai.manager.auth.principal import Principal
from bai.manager.bgtasks import BackgroundTasks, Progress, TaskRecord
from bai.manager.db.compute import AgentRow, ImageRow
from bai.manager.db.identity import UserRow
from bai.manager.db.policies import UserResourcePolicyRow
from bai.manager.sessions.queries import load_writable

REGISTRY = "bai.local"
# A Docker path component without its doubled separators (the contract's narrower rule).
_NAME = re.compile(r"[a-z0-9]+(?:[._-][a-z0-9]+)*")
NAME_MAX = 64
OWNER_LABEL = "ai.backend.customized-image.owner"
NAME_LABEL = "ai.backend.customized-image.name"
SOURCE_LABEL = "ai.backend.customized-image.source-session"
# Committing pauses the container and writes its layer: minutes for big ones.
COMMIT_TIMEOUT_SECONDS = 30 * 60


@dataclass(frozen=True)
class CommitRequest:
    session_id: uuid.UUID
    image_name: str
    image_tag: str


def parse_commit(
    session_id: uuid.UUID, image_name: str, image_tag: str, now: datetime
) -> CommitRequest:
    """Validated names; an empty tag becomes the UTC time (20261127-093000)."""
    violations: list[FieldViolation] = []
    if not (0 < len(image_name) <= NAME_MAX and _NAME.fullmatch(image_name)):
        violations.append(
            FieldViolation(
                "image_name",
                f"1-{NAME_MAX} characters of a-z, 0-9 and . _ - (not leading, trailing or doubled)",
            )
        )
    tag = image_tag or now.strftime("%Y%m%d-%H%M%S")
    if not TAG.fullmatch(tag):
        violations.append(
            FieldViolation(
                "image_tag", "1-128 characters of A-Z, a-z, 0-9, _ . - (not leading . -)"
            )
        )
    if violations:
        raise InvalidArgument(violations)
    return CommitRequest(session_id, image_name, tag)


def customized_ref(owner_id: uuid.UUID, name: str, tag: str) -> str:
    return f"{REGISTRY}/customized/{owner_id.hex}/{name}:{tag}"


@dataclass(frozen=True)
class CommitPlan:
    """What the task needs, read while the checks ran."""

    agent_id: str
    kernel_id: str
    architecture: str
    target: str
    # Added to the image; the source image's labels carry over as well.
    labels: dict[str, str]
    source_labels: dict[str, str]


async def plan_commit(db: AsyncSession, p: Principal, req: CommitRequest) -> CommitPlan:
    loaded = await load_writable(db, p, req.session_id)
    kernel = loaded.main_kernel
    if loaded.session.status != "RUNNING" or kernel is None or kernel.status != "RUNNING":
        raise FailedPrecondition(
            "only a RUNNING session can be committed", reason="SESSION_NOT_READY"
        )
    await require_room(db, p.user_id)
    source_labels = await db.scalar(
        select(ImageRow.labels).where(
            ImageRow.canonical == kernel.image, ImageRow.architecture == kernel.architecture
        )
    )
    return CommitPlan(
        agent_id=kernel.agent_id or "",
        kernel_id=str(kernel.id),
        architecture=kernel.architecture,
        target=customized_ref(p.user_id, req.image_name, req.image_tag),
        labels={
            OWNER_LABEL: f"user:{p.user_id}",
            NAME_LABEL: req.image_name,
            SOURCE_LABEL: str(req.session_id),
        },
        source_labels=dict(source_labels or {}),
    )


async def require_room(db: AsyncSession, user_id: uuid.UUID) -> None:
    limit = await db.scalar(
        select(UserResourcePolicyRow.max_customized_image_count)
        .join(UserRow, UserRow.resource_policy == UserResourcePolicyRow.name)
        .where(UserRow.id == user_id)
    )
    if not limit:
        return
    count = await db.scalar(
        select(func.count())
        .select_from(ImageRow)
        .where(ImageRow.owner_user_id == user_id, ImageRow.status == "ALIVE")
    )
    if (count or 0) >= limit:
        raise ResourceExhausted(
            f"you already have {count} customized images (at most {limit})",
            reason="QUOTA_EXCEEDED",
            metadata={"limit": str(limit)},
        )


async def commit_on_agent(
    pool: AgentClientPool, plan: CommitPlan, progress: Progress
) -> agent_pb2.CommitResult:
    request = agent_pb2.CommitKernelRequest(
        kernel_id=plan.kernel_id,
        target=image_pb2.ImageRef(
            canonical=plan.target, architecture=plan.architecture, is_local=True
        ),
        labels=plan.labels,
    )
    # grpc.aio stubs are typed as sync ones: Any, as in images/pulls.py.
    stub: Any = await pool.stub(plan.agent_id)
    result: agent_pb2.CommitResult | None = None
    with agent_errors(plan.agent_id):
        replies: Any = stub.CommitKernel(
            request, metadata=pool.metadata(plan.agent_id), timeout=COMMIT_TIMEOUT_SECONDS
        )
        async for reply in replies:
            if reply.HasField("result"):
                result = reply.result
            else:
                step = reply.progress
                await progress.update(step.current_bytes, step.total_bytes, step.message)
    if result is None:
        raise Unavailable(
            f"agent {plan.agent_id} ended the commit without a result",
            reason="AGENT_UNAVAILABLE",
        )
    return result


async def record_image(
    db: AsyncSession, plan: CommitPlan, owner_id: uuid.UUID, result: agent_pb2.CommitResult
) -> ImageRow:
    """The committed image: ALIVE, local, the caller's, held by the agent."""
    canonical = result.image.canonical or plan.target
    architecture = result.image.architecture or plan.architecture
    reported = ReportedImage(
        canonical=canonical,
        architecture=architecture,
        digest=result.image.digest,
        size_bytes=result.size_bytes,
        labels={**plan.source_labels, **plan.labels},
        is_local=True,
    )
    await upsert_reported(db, [reported])
    row = await db.scalar(
        select(ImageRow).where(
            ImageRow.canonical == canonical, ImageRow.architecture == architecture
        )
    )
    assert row is not None  # upserted just above
    row.owner_user_id = owner_id
    row.status = "ALIVE"
    agent = await db.get(AgentRow, plan.agent_id, with_for_update=True)
    if agent is not None:
        agent.images = sorted({*agent.images, image_key(canonical, architecture)})
    return row


async def start_commit(
    sessions: async_sessionmaker[AsyncSession],
    pool: AgentClientPool,
    tasks: BackgroundTasks,
    p: Principal,
    req: CommitRequest,
) -> TaskRecord:
    async with sessions() as db:
        plan = await plan_commit(db, p, req)

    async def work(progress: Progress) -> dict[str, str]:
        await progress.update(0, 0, f"committing {plan.target}")
        result = await commit_on_agent(pool, plan, progress)
        async with sessions() as db, db.begin():
            row = await record_image(db, plan, p.user_id, result)
            image_id = str(row.id)
        return {"image": row.canonical, "image_id": image_id, "digest": result.image.digest}

    return await tasks.start("session.commit", p, work)
