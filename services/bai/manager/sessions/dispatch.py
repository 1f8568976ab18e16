"""Ask agents to create a scheduled session's kernels (SCHEDULED -> PREPARING).

One CreateKernels per agent holding kernels of the session (the contract has
one session per request); a round's sessions are loaded together. The call is
idempotent per kernel id, so the sweeper may send it again after a lost
reply. Outcomes:
- a kernel accepted: its reported status (PREPARING or later) is applied;
- a kernel refused (NO_CAPACITY, IMAGE_NOT_FOUND, ...): the whole session is
  cancelled (a session runs with all its kernels or not at all) and the
  kernels other agents accepted are destroyed;
- an agent unreachable: nothing changes; the sweeper retries within the
  SCHEDULED timeout budget.
Agent events on the registry stream then take the kernels to RUNNING.
"""

from __future__ import annotations

import asyncio
import logging
import uuid
from collections import defaultdict
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime

from google.protobuf.duration_pb2 import Duration
from google.protobuf.json_format import ParseDict
from google.rpc import error_details_pb2, status_pb2
from redis.asyncio import Redis
from sqlalchemy import select, tuple_
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from bai.api.agent.v1 import agent_pb2
from bai.api.common.v1 import image_pb2, types_pb2
from bai.api.common.v1 import session_pb2 as common
from bai.common.errors import BaiError, Unavailable
from bai.manager.agents import wire
from bai.manager.agents.kernel_updates import apply_report, lock_sessions, publish_quietly
from bai.manager.agents.pool import AgentClientPool
from bai.manager.db.compute import ImageRow, KernelRow, SessionRow
from bai.manager.db.identity import UserRow
from bai.manager.images.pulls import image_ref
from bai.manager.images.registries import NO_REGISTRIES, Registries
from bai.manager.sessions import lifecycle, names, transitions
from bai.manager.sessions.queries import LoadedSession, load_many

log = logging.getLogger(__name__)

CREATE_TIMEOUT = 30.0
# Agent addresses are looked up at most this often (seconds) while dispatching.
ADDRESS_MAX_AGE = 2.0
# Statuses in which (re-)sending CreateKernels makes sense.
DISPATCHABLE = frozenset({"SCHEDULED", "PREPARING", "PULLING", "PREPARED", "CREATING"})
# Agent error reasons -> the lifecycle reason a refused kernel is cancelled with.
_REFUSAL_REASON = {
    "NO_CAPACITY": "no-capacity",
    "IMAGE_NOT_FOUND": "image-pull-failed",
    "IMAGE_PULL_FAILED": "image-pull-failed",
}


def _now() -> datetime:
    return datetime.now(UTC)


def cluster_info(loaded: LoadedSession) -> agent_pb2.ClusterInfo:
    session = loaded.session
    replicas: dict[str, int] = defaultdict(int)
    for kernel in loaded.kernels:
        replicas[kernel.cluster_role] += 1
    return agent_pb2.ClusterInfo(
        mode=names.cluster_mode_value(session.cluster_mode),  # type: ignore[arg-type]
        size=session.cluster_size,
        replicas=dict(replicas),
        hostnames=[k.cluster_hostname for k in loaded.kernels],
        network_type=agent_pb2.NETWORK_TYPE_VOLATILE,
    )


def kernel_config(
    loaded: LoadedSession, kernel: KernelRow, image: image_pb2.ImageRef, user: UserRow | None
) -> agent_pb2.KernelCreationConfig:
    session = loaded.session
    opts = session.resource_opts or {}
    config = agent_pb2.KernelCreationConfig(
        kernel_id=str(kernel.id),
        session_id=str(session.id),
        session_name=session.name,
        session_type=names.session_type_value(session.session_type),  # type: ignore[arg-type]
        owner_user_id=str(session.user_id),
        owner_access_key=session.access_key,
        domain_name=session.domain_name,
        project_id=str(session.project_id),
        image=image,
        resource_slots=types_pb2.ResourceSlots(slots=kernel.occupied_slots),
        resource_opts=common.ResourceOptions(shmem_bytes=int(opts.get("shmem_bytes", 0))),
        environ=session.environ,
        bootstrap_script=session.bootstrap_script,
        startup_command=session.startup_command,
        preopen_ports=[int(p) for p in session.preopen_ports],
        block_service_ports=session.session_type == "system",
        cluster_role=kernel.cluster_role,
        cluster_idx=kernel.cluster_idx,
        local_rank=kernel.local_rank,
        cluster_hostname=kernel.cluster_hostname,
        vfolder_mounts=[ParseDict(m, common.VFolderMount()) for m in session.mounts],
    )
    if session.batch_timeout:
        config.batch_timeout.CopyFrom(Duration(seconds=session.batch_timeout))
    if user is not None:
        if user.container_uid is not None:
            config.uid = user.container_uid
        if user.container_main_gid is not None:
            config.main_gid = user.container_main_gid
        config.supplementary_gids.extend(user.container_gids or [])
    return config


def build_requests(
    loaded: LoadedSession, image: image_pb2.ImageRef, user: UserRow | None
) -> dict[str, agent_pb2.CreateKernelsRequest]:
    """One request per agent, for the kernels not yet running or ended."""
    cluster = cluster_info(loaded)
    out: dict[str, agent_pb2.CreateKernelsRequest] = {}
    for kernel in loaded.kernels:
        if kernel.agent_id is None or kernel.status not in DISPATCHABLE:
            continue
        request = out.get(kernel.agent_id)
        if request is None:
            request = out[kernel.agent_id] = agent_pb2.CreateKernelsRequest(
                session_id=str(loaded.session.id), cluster=cluster
            )
        request.kernels.append(kernel_config(loaded, kernel, image, user))
    return out


def _refusal(error: BaiError) -> tuple[str, str]:
    return _REFUSAL_REASON.get(error.reason, "failed-to-start"), error.message[:256]


async def _send(
    pool: AgentClientPool, agent_id: str, request: agent_pb2.CreateKernelsRequest
) -> agent_pb2.CreateKernelsResponse | BaiError | None:
    """The reply; a BaiError refusing every kernel; None when the agent is unreachable."""
    try:
        reply: agent_pb2.CreateKernelsResponse = await pool.call(
            agent_id,
            "CreateKernels",
            request,
            deadline=CREATE_TIMEOUT,
            address_max_age=ADDRESS_MAX_AGE,
        )
        return reply
    except Unavailable as exc:
        log.info("CreateKernels to agent %s deferred: %s", agent_id, exc.message)
        return None
    except BaiError as exc:
        return exc


async def dispatch(
    sessions: async_sessionmaker[AsyncSession],
    redis: Redis,
    pool: AgentClientPool,
    session_id: uuid.UUID,
    now: Callable[[], datetime] = _now,
    registries: Registries = NO_REGISTRIES,
) -> None:
    """`registries` give the pull url and credentials of the session's image."""
    await dispatch_round(sessions, redis, pool, [session_id], now, registries)


async def dispatch_round(
    sessions: async_sessionmaker[AsyncSession],
    redis: Redis,
    pool: AgentClientPool,
    session_ids: Sequence[uuid.UUID],
    now: Callable[[], datetime] = _now,
    registries: Registries = NO_REGISTRIES,
) -> None:
    """Dispatch the sessions a scheduling round placed, their rows, images and owners
    loaded once for all of them; each session's calls and outcome are its own."""
    async with sessions() as db:
        loaded = [
            s
            for s in (await load_many(db, session_ids)).values()
            if s.session.status in DISPATCHABLE
        ]
        if not loaded:
            return
        images = await _image_refs(
            db, {(s.session.image, s.session.architecture) for s in loaded}, registries
        )
        owners = select(UserRow).where(UserRow.id.in_({s.session.user_id for s in loaded}))
        users = {user.id: user for user in (await db.execute(owners)).scalars()}
    outcomes = await asyncio.gather(
        *(
            _dispatch_loaded(
                pool,
                s,
                images.get((s.session.image, s.session.architecture))
                or image_pb2.ImageRef(
                    canonical=s.session.image, architecture=s.session.architecture
                ),
                users.get(s.session.user_id),
            )
            for s in loaded
        ),
        return_exceptions=True,
    )
    # One session's failure must not hide the others' (they all ran to the end).
    failures = [o for o in outcomes if isinstance(o, BaseException)]
    for failure in failures[1:]:
        log.error("dispatch failed", exc_info=failure)
    replies = [o for o in outcomes if isinstance(o, Replies)]
    if replies:
        await _record(sessions, redis, pool, replies, now())
    if failures:
        raise failures[0]


async def _image_refs(
    db: AsyncSession, wanted: set[tuple[str, str]], registries: Registries
) -> dict[tuple[str, str], image_pb2.ImageRef]:
    rows = await db.execute(
        select(ImageRow).where(
            tuple_(ImageRow.canonical, ImageRow.architecture).in_(sorted(wanted))
        )
    )
    return {(row.canonical, row.architecture): image_ref(row, registries) for row in rows.scalars()}


@dataclass
class Replies:
    """What the agents said about one session's kernels."""

    session_id: uuid.UUID
    accepted: list[agent_pb2.Kernel] = field(default_factory=list)
    # kernel id -> (lifecycle reason, message)
    refused: dict[uuid.UUID, tuple[str, str]] = field(default_factory=dict)


async def _dispatch_loaded(
    pool: AgentClientPool,
    loaded: LoadedSession,
    image: image_pb2.ImageRef,
    user: UserRow | None,
) -> Replies:
    requests = build_requests(loaded, image, user)
    agents = sorted(requests)
    replies = await asyncio.gather(*(_send(pool, a, requests[a]) for a in agents))
    out = Replies(loaded.session.id)
    for agent_id, reply in zip(agents, replies, strict=True):
        if reply is None:
            continue
        if isinstance(reply, BaiError):
            for config in requests[agent_id].kernels:
                out.refused[uuid.UUID(config.kernel_id)] = _refusal(reply)
            continue
        for result in reply.results:
            if result.HasField("error"):
                error = BaiError(result.error.message, reason=_status_reason(result.error))
                out.refused[uuid.UUID(result.kernel_id)] = _refusal(error)
            elif result.HasField("kernel"):
                out.accepted.append(result.kernel)
    return out


def _status_reason(status: status_pb2.Status) -> str:
    for detail in status.details:
        info = error_details_pb2.ErrorInfo()
        if detail.Unpack(info):
            return str(info.reason)
    return "KERNEL_CREATION_FAILED"


async def _record(
    sessions: async_sessionmaker[AsyncSession],
    redis: Redis,
    pool: AgentClientPool,
    round_replies: list[Replies],
    now: datetime,
) -> None:
    """Apply a round's replies in one transaction, its sessions locked in id order."""
    pending = transitions.PendingEvents()
    to_destroy: list[tuple[str, str]] = []
    async with sessions() as db, db.begin():
        locked = await lock_sessions(db, [r.session_id for r in round_replies])
        for replies in round_replies:
            if replies.session_id in locked:
                session, kernels = locked[replies.session_id]
                pending.extend(await _apply_replies(db, session, kernels, replies, now, to_destroy))
    await publish_quietly(redis, pending)
    for agent_id, kernel_id in to_destroy:
        request = agent_pb2.DestroyKernelRequest(
            kernel_id=kernel_id, reason=common.LIFECYCLE_REASON_FAILED_TO_START, forced=True
        )
        try:
            await pool.call(agent_id, "DestroyKernel", request)
        except BaiError as exc:
            log.info("could not destroy kernel %s on %s: %s", kernel_id, agent_id, exc.message)


async def _apply_replies(
    db: AsyncSession,
    session: SessionRow,
    kernels: list[KernelRow],
    replies: Replies,
    now: datetime,
    to_destroy: list[tuple[str, str]],
) -> transitions.PendingEvents:
    """Accepted kernels take their reported status; a refusal cancels the session
    (the kernels other agents accepted go to `to_destroy`)."""
    pending = transitions.PendingEvents()
    by_id = {k.id: k for k in kernels}
    for reported in replies.accepted:
        kernel = by_id.get(uuid.UUID(reported.kernel_id))
        if kernel is not None:
            report = wire.reported_kernel(reported)
            pending.extend(await apply_report(db, session, kernels, kernel, report, now))
    refused = replies.refused
    if not refused:
        return pending
    reason, message = next(iter(refused.values()))
    for kernel in kernels:
        if kernel.status in lifecycle.KERNEL_TERMINAL:
            continue
        if kernel.id not in refused and kernel.agent_id:
            to_destroy.append((kernel.agent_id, str(kernel.id)))
        pending.extend(
            await transitions.set_kernel_status(
                db,
                session,
                kernel,
                "CANCELLED",
                now,
                reason=refused.get(kernel.id, (reason, message))[0],
                message=refused.get(kernel.id, (reason, message))[1],
                siblings=kernels,
            )
        )
    return pending
