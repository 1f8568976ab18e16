"""Quota scopes: users read their own and their projects'; admins set limits in
their domain, up to the owner's policy (max_quota_scope_size)."""

from __future__ import annotations

import uuid
from dataclasses import dataclass

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from bai.api.common.v1 import storage_pb2 as common
from bai.api.storage.v1 import storage_pb2 as spb
from bai.common.errors import NotFound, ResourceExhausted
from bai.manager.auth.access import can_read_domain_objects, require_writer
from bai.manager.auth.principal import Principal
from bai.manager.db.identity import ProjectRow, UserRow
from bai.manager.db.policies import ProjectResourcePolicyRow, UserResourcePolicyRow
from bai.manager.vfolders.storage_client import HostRef, StorageProxies


@dataclass(frozen=True)
class ScopeOwner:
    domain_name: str
    # The owner's policy's max_quota_scope_size (0: unlimited).
    max_size: int
    # The caller is the user or a member of the project.
    is_own: bool


async def scope_owner(db: AsyncSession, p: Principal, scope: common.QuotaScope) -> ScopeOwner:
    """The user or project the scope belongs to; NOT_FOUND unless the caller may
    read it."""
    try:
        owner_id = uuid.UUID(scope.id)
    except ValueError as exc:
        raise NotFound("quota scope not found") from exc
    if scope.type == common.QUOTA_SCOPE_TYPE_PROJECT:
        found = (
            await db.execute(
                select(ProjectRow.domain_name, ProjectResourcePolicyRow.max_quota_scope_size)
                .join(
                    ProjectResourcePolicyRow,
                    ProjectResourcePolicyRow.name == ProjectRow.resource_policy,
                )
                .where(ProjectRow.id == owner_id)
            )
        ).first()
        is_own = owner_id in p.project_ids
    else:
        found = (
            await db.execute(
                select(UserRow.domain_name, UserResourcePolicyRow.max_quota_scope_size)
                .join(UserResourcePolicyRow, UserResourcePolicyRow.name == UserRow.resource_policy)
                .where(UserRow.id == owner_id)
            )
        ).first()
        is_own = owner_id == p.user_id
    if found is None or not (is_own or can_read_domain_objects(p, found[0])):
        raise NotFound("quota scope not found")
    return ScopeOwner(found[0], found[1] or 0, is_own)


def _volume(proxies: StorageProxies, host: str) -> HostRef:
    ref = HostRef.parse(host)
    if ref is None or ref.proxy not in proxies.names():
        raise NotFound(f"storage host {host!r} not found")
    return ref


async def get_quota(
    db: AsyncSession, p: Principal, proxies: StorageProxies, host: str, scope: common.QuotaScope
) -> spb.QuotaUsage:
    await scope_owner(db, p, scope)
    ref = _volume(proxies, host)
    reply = await proxies.call(
        ref.proxy, "GetQuotaScope", spb.GetQuotaScopeRequest(volume=ref.volume, quota_scope=scope)
    )
    assert isinstance(reply, spb.GetQuotaScopeResponse)
    return reply.usage


async def set_quota(
    db: AsyncSession,
    p: Principal,
    proxies: StorageProxies,
    host: str,
    scope: common.QuotaScope,
    limit_bytes: int,
) -> spb.QuotaUsage:
    owner = await scope_owner(db, p, scope)
    require_writer(p)  # admins only: monitors READ_ONLY_ROLE, users ROLE_FORBIDDEN
    ref = _volume(proxies, host)
    if owner.max_size and not 0 < limit_bytes <= owner.max_size:
        raise ResourceExhausted(
            f"the owner's policy allows at most {owner.max_size} bytes",
            reason="QUOTA_EXCEEDED",
            metadata={"limit": str(owner.max_size)},
        )
    reply = await proxies.call(
        ref.proxy,
        "CreateQuotaScope",
        spb.CreateQuotaScopeRequest(volume=ref.volume, quota_scope=scope, limit_bytes=limit_bytes),
    )
    assert isinstance(reply, spb.CreateQuotaScopeResponse)
    return reply.usage
