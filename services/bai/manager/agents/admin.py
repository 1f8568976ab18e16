"""The admin view of agents: list, read, and the few fields admins change.

Agents are shared infrastructure: superadmins and monitors read all of them;
domain admins read the agents of the scaling groups bound to their domain
(unless the manager hides agents); users are ROLE_FORBIDDEN. Only
superadmins change agents.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from sqlalchemy import Select, func, select
from sqlalchemy.ext.asyncio import AsyncSession

from bai.common.errors import FailedPrecondition, NotFound, PermissionDenied
from bai.manager.admin.resource_policies import page_by_name
from bai.manager.auth.access import Access, require_superadmin
from bai.manager.auth.principal import Principal, Role
from bai.manager.db.compute import AgentRow, KernelRow
from bai.manager.db.policies import ScalingGroupForDomainRow, ScalingGroupRow
from bai.manager.sessions import lifecycle

UPDATABLE = ("schedulable", "scaling_group", "auto_terminate_abusing_kernel")


@dataclass(frozen=True)
class AgentFilters:
    statuses: tuple[str, ...] = ()
    scaling_group: str = ""
    schedulable: bool | None = None
    architecture: str = ""


@dataclass(frozen=True)
class AgentView:
    row: AgentRow
    kernel_count: int


def _readable(p: Principal, hide_agents: bool) -> Select[Any]:
    query = select(AgentRow)
    if p.role in (Role.SUPERADMIN, Role.MONITOR):
        return query
    if p.role is Role.ADMIN and not hide_agents:
        bound = select(ScalingGroupForDomainRow.scaling_group).where(
            ScalingGroupForDomainRow.domain_name == p.domain_name
        )
        return query.where(AgentRow.scaling_group.in_(bound))
    raise PermissionDenied("only superadmins and monitors read agents", reason="ROLE_FORBIDDEN")


async def _kernel_counts(db: AsyncSession, agent_ids: Sequence[str]) -> dict[str, int]:
    if not agent_ids:
        return {}
    rows = await db.execute(
        select(KernelRow.agent_id, func.count())
        .where(
            KernelRow.agent_id.in_(agent_ids),
            KernelRow.status.not_in(lifecycle.KERNEL_TERMINAL),
        )
        .group_by(KernelRow.agent_id)
    )
    return {str(agent_id): int(count) for agent_id, count in rows}


async def _views(db: AsyncSession, rows: Sequence[AgentRow]) -> list[AgentView]:
    counts = await _kernel_counts(db, [r.id for r in rows])
    return [AgentView(r, counts.get(r.id, 0)) for r in rows]


async def list_agents(
    db: AsyncSession,
    p: Principal,
    hide_agents: bool,
    filters: AgentFilters,
    page_size: int,
    page_token: str,
) -> tuple[list[AgentView], str]:
    query = _readable(p, hide_agents)
    if filters.statuses:
        query = query.where(AgentRow.status.in_(filters.statuses))
    if filters.scaling_group:
        query = query.where(AgentRow.scaling_group == filters.scaling_group)
    if filters.schedulable is not None:
        query = query.where(AgentRow.schedulable.is_(filters.schedulable))
    if filters.architecture:
        query = query.where(AgentRow.architecture == filters.architecture)
    query_key = {"list": "agents", **filters.__dict__}
    rows, token = await page_by_name(db, query, AgentRow.id, page_size, page_token, query_key)
    return await _views(db, rows), token


async def get_agent(db: AsyncSession, p: Principal, hide_agents: bool, agent_id: str) -> AgentView:
    row = (
        await db.execute(_readable(p, hide_agents).where(AgentRow.id == agent_id))
    ).scalar_one_or_none()
    if row is None:
        raise NotFound(f"agent {agent_id!r} not found")
    return (await _views(db, [row]))[0]


async def update_agent(
    db: AsyncSession, p: Principal, agent_id: str, changes: dict[str, Any]
) -> AgentView:
    require_superadmin(p, Access.WRITE)
    row = await db.get(AgentRow, agent_id, with_for_update=True)
    if row is None:
        raise NotFound(f"agent {agent_id!r} not found")
    group = changes.get("scaling_group")
    if group is not None and await db.get(ScalingGroupRow, group) is None:
        raise FailedPrecondition(
            f"scaling group {group!r} does not exist", reason="REFERENCE_NOT_FOUND"
        )
    for key, value in changes.items():
        setattr(row, key, value)
    await db.flush()
    return (await _views(db, [row]))[0]
