"""Read one scaling group from PostgreSQL into an immutable SchedulingSnapshot.

Read without locks: the applier re-checks everything it writes (agent
revisions, session still PENDING), so a snapshot that went stale while the
scheduler thought only costs a retry in the next round.
"""

from __future__ import annotations

import uuid
from collections import defaultdict
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from datetime import datetime
from decimal import Decimal

from sqlalchemy import func, select, tuple_
from sqlalchemy.ext.asyncio import AsyncSession

from bai.common.slots import Slots
from bai.manager.agents.images import image_key
from bai.manager.db.compute import AgentRow, ImageRow, KernelRow, SessionRow
from bai.manager.db.identity import DomainRow, KeypairRow, ProjectRow
from bai.manager.db.policies import KeypairResourcePolicyRow, ScalingGroupRow
from bai.manager.scheduling import (
    AgentInfo,
    AgentSelector,
    ClusterMode,
    KernelRequest,
    KeypairPolicy,
    OrderingPolicy,
    PendingSession,
    SchedulerConfig,
    SchedulingSnapshot,
    SessionType,
)
from bai.manager.sessions import lifecycle
from bai.manager.sessions.usage_reads import live_usage

ALWAYS_KNOWN = frozenset({"cpu", "mem"})
_ORDERING = {"fifo": OrderingPolicy.FIFO, "lifo": OrderingPolicy.LIFO, "drf": OrderingPolicy.DRF}
_SELECTOR = {
    "concentrated": AgentSelector.CONCENTRATED,
    "dispersed": AgentSelector.DISPERSED,
    "roundrobin": AgentSelector.ROUND_ROBIN,
    "round-robin": AgentSelector.ROUND_ROBIN,
}


@dataclass(frozen=True)
class SchedulerDefaults:
    """Manager-wide settings a scaling group does not override."""

    strict_fifo: bool = False
    max_sessions_per_round: int = 1000


def scheduler_config(group: ScalingGroupRow, defaults: SchedulerDefaults) -> SchedulerConfig:
    opts = group.scheduler_opts or {}
    return SchedulerConfig(
        # fair-share has no scheduler of its own yet: DRF is the closest fairness policy.
        ordering=_ORDERING.get(group.scheduler, OrderingPolicy.DRF),
        selector=_SELECTOR.get(
            opts.get("agent_selection_strategy", "dispersed"), AgentSelector.DISPERSED
        ),
        strict_fifo=bool(opts.get("strict_fifo", defaults.strict_fifo)),
        max_sessions_per_round=defaults.max_sessions_per_round,
    )


async def groups_with_pending(db: AsyncSession) -> list[str]:
    query = select(SessionRow.scaling_group).where(SessionRow.status == "PENDING").distinct()
    return sorted((await db.execute(query)).scalars())


def _limit(raw: Mapping[str, str], limited: bool, known: Iterable[str]) -> Slots:
    """A policy's limit; with "limited" defaults, slots it does not name are zero."""
    values = {k: Decimal(v) for k, v in raw.items()}
    if limited:
        for slot in known:
            values.setdefault(slot, Decimal(0))
    return Slots(values)


def _dependencies_met(deps: list[str], finished: Mapping[str, tuple[str, str]]) -> bool | None:
    if not deps:
        return None
    return all(finished.get(d) == ("TERMINATED", "success") for d in deps)


async def _image_holders(
    db: AsyncSession, kernels: Iterable[KernelRow], agents: list[AgentRow]
) -> dict[tuple[str, str], tuple[str, ...]]:
    """For each image of these kernels that no registry has (built or committed on a
    node, so it cannot be pulled), the agents here that hold it."""
    wanted = {(k.image, k.architecture) for k in kernels}
    if not wanted:
        return {}
    local = await db.execute(
        select(ImageRow.canonical, ImageRow.architecture).where(
            ImageRow.is_local, tuple_(ImageRow.canonical, ImageRow.architecture).in_(wanted)
        )
    )
    return {
        (canonical, arch): tuple(a.id for a in agents if image_key(canonical, arch) in a.images)
        for canonical, arch in local.all()
    }


def _image_agents(
    kernels: list[KernelRow], holders: Mapping[tuple[str, str], tuple[str, ...]]
) -> tuple[str, ...] | None:
    """The agents holding every local image the session's kernels use; None: no local image."""
    found: tuple[str, ...] | None = None
    for kernel in kernels:
        agents = holders.get((kernel.image, kernel.architecture))
        if agents is not None:
            found = agents if found is None else tuple(a for a in found if a in agents)
    return found


def _kernel_order(kernel: KernelRow) -> tuple[bool, int]:
    return kernel.cluster_role != "main", kernel.cluster_idx


async def build_snapshot(
    db: AsyncSession,
    group: ScalingGroupRow,
    now: datetime,
    *,
    limit: int,
    round_robin_cursor: str | None = None,
) -> SchedulingSnapshot:
    pending_rows = list(
        (
            await db.execute(
                select(SessionRow)
                .where(SessionRow.status == "PENDING", SessionRow.scaling_group == group.name)
                .order_by(SessionRow.priority.desc(), SessionRow.created_at)
                .limit(limit)
            )
        ).scalars()
    )
    kernels: dict[uuid.UUID, list[KernelRow]] = defaultdict(list)
    if pending_rows:
        kq = select(KernelRow).where(KernelRow.session_id.in_([s.id for s in pending_rows]))
        for kernel in (await db.execute(kq)).scalars():
            kernels[kernel.session_id].append(kernel)
    agent_rows = list(
        (
            await db.execute(
                select(AgentRow).where(
                    AgentRow.scaling_group == group.name,
                    AgentRow.status == "ALIVE",
                    AgentRow.schedulable,
                )
            )
        ).scalars()
    )
    counts: dict[str, int] = {}
    if agent_rows:
        cq = (
            select(KernelRow.agent_id, func.count())
            .where(
                KernelRow.agent_id.in_([a.id for a in agent_rows]),
                KernelRow.status.not_in(lifecycle.KERNEL_TERMINAL),
            )
            .group_by(KernelRow.agent_id)
        )
        counts = {agent_id: n for agent_id, n in (await db.execute(cq)).all() if agent_id}
    known = set(ALWAYS_KNOWN).union(*(a.slot_types.keys() for a in agent_rows))
    holders = await _image_holders(db, (k for ks in kernels.values() for k in ks), agent_rows)
    dep_ids = {uuid.UUID(d) for s in pending_rows for d in s.dependencies}
    finished: dict[str, tuple[str, str]] = {}
    if dep_ids:
        dq = select(SessionRow.id, SessionRow.status, SessionRow.result).where(
            SessionRow.id.in_(dep_ids)
        )
        finished = {str(i): (st, r) for i, st, r in (await db.execute(dq)).all()}
    access_keys = {s.access_key for s in pending_rows}
    projects = {s.project_id for s in pending_rows}
    domains = {s.domain_name for s in pending_rows}
    policies: dict[str, KeypairPolicy] = {}
    if access_keys:
        pq = (
            select(KeypairRow.access_key, KeypairResourcePolicyRow)
            .join(
                KeypairResourcePolicyRow,
                KeypairResourcePolicyRow.name == KeypairRow.resource_policy,
            )
            .where(KeypairRow.access_key.in_(access_keys))
        )
        for access_key, policy in (await db.execute(pq)).all():
            limited = policy.default_for_unspecified == "limited"
            policies[access_key] = KeypairPolicy(
                total_resource_slots=_limit(policy.total_resource_slots, limited, known),
                max_concurrent_sessions=policy.max_concurrent_sessions,
                max_concurrent_sftp_sessions=policy.max_concurrent_sftp_sessions,
            )
    usage = await live_usage(db, access_keys, projects, domains)
    project_limits: dict[str, Slots] = {}
    if projects:
        rq = select(ProjectRow.id, ProjectRow.total_resource_slots).where(
            ProjectRow.id.in_(projects)
        )
        project_limits = {str(i): Slots.from_wire(s) for i, s in (await db.execute(rq)).all()}
    domain_limits: dict[str, Slots] = {}
    if domains:
        rq2 = select(DomainRow.name, DomainRow.total_resource_slots).where(
            DomainRow.name.in_(domains)
        )
        domain_limits = {n: Slots.from_wire(s) for n, s in (await db.execute(rq2)).all()}
    pending = tuple(
        PendingSession(
            id=str(s.id),
            access_key=s.access_key,
            user_id=str(s.user_id),
            project_id=str(s.project_id),
            domain_name=s.domain_name,
            created_at=s.created_at,
            kernels=tuple(
                KernelRequest(str(k.id), k.cluster_role, Slots.from_wire(k.requested_slots))
                for k in sorted(
                    kernels[s.id], key=lambda k: (k.cluster_role != "main", k.cluster_idx)
                )
            ),
            session_type=SessionType(s.session_type),
            priority=s.priority,
            architecture=s.architecture,
            cluster_mode=ClusterMode(s.cluster_mode),
            agent_list=tuple(s.agent_list),
            image_agents=_image_agents(kernels[s.id], holders),
            starts_at=s.starts_at,
            dependencies_satisfied=_dependencies_met(s.dependencies, finished),
        )
        for s in pending_rows
        if kernels[s.id]
    )
    return SchedulingSnapshot(
        now=now,
        scaling_group=group.name,
        pending=pending,
        agents=tuple(
            AgentInfo(
                id=a.id,
                architecture=a.architecture,
                capacity=Slots.from_wire(a.available_slots),
                occupied=Slots.from_wire(a.occupied_slots),
                revision=a.revision,
                container_count=counts.get(a.id, 0),
                max_containers=a.max_containers,
            )
            for a in agent_rows
        ),
        known_slots=frozenset(known),
        keypair_policies=policies,
        keypair_usage=usage.keypairs,
        project_limits={k: v for k, v in project_limits.items() if v},
        domain_limits={k: v for k, v in domain_limits.items() if v},
        project_usage=usage.projects,
        domain_usage=usage.domains,
        round_robin_cursor=round_robin_cursor,
    )
