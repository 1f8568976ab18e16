"""`bai manager bootstrap`: the first domain, project, scaling group and superadmin,
and the default domain's use of the default storage host.

Idempotent: objects that exist are left as they are. Secrets (password,
secret key) are generated when not given and shown only when created.
"""

from __future__ import annotations

import asyncio
import secrets
from dataclasses import dataclass

from sqlalchemy import select
from sqlalchemy.dialects.postgresql import insert
from sqlalchemy.ext.asyncio import AsyncSession

from bai.common.signing import new_keypair
from bai.manager.auth.passwords import hash_password
from bai.manager.db.identity import DomainRow, KeypairRow, ProjectMemberRow, ProjectRow, UserRow
from bai.manager.db.policies import (
    KeypairResourcePolicyRow,
    ProjectResourcePolicyRow,
    ScalingGroupForDomainRow,
    ScalingGroupRow,
    UserResourcePolicyRow,
)
from bai.manager.vfolders.permissions import HOST_PERMISSIONS

DEFAULT = "default"


@dataclass
class BootstrapResult:
    username: str
    email: str
    # Set only when this run created them.
    password: str | None
    access_key: str | None
    secret_key: str | None


async def _ensure(db: AsyncSession, model: type, **values: object) -> None:
    await db.execute(insert(model).values(**values).on_conflict_do_nothing())


async def _grant_vfolder_host(db: AsyncSession, host: str) -> None:
    """The default domain may use the default storage host fully (an entry an
    admin has changed is left alone)."""
    domain = await db.get(DomainRow, DEFAULT, with_for_update=True)
    assert domain is not None
    hosts = dict(domain.allowed_vfolder_hosts or {})
    if host not in hosts:
        hosts[host] = sorted(HOST_PERMISSIONS)
        domain.allowed_vfolder_hosts = hosts


async def bootstrap(
    db: AsyncSession,
    *,
    email: str = "admin@bai.local",
    username: str = "admin",
    password: str | None = None,
    access_key: str | None = None,
    secret_key: str | None = None,
    vfolder_host: str = "",
) -> BootstrapResult:
    for model in (KeypairResourcePolicyRow, UserResourcePolicyRow, ProjectResourcePolicyRow):
        await _ensure(db, model, name=DEFAULT)
    await _ensure(db, DomainRow, name=DEFAULT, description="Default domain")
    if vfolder_host:
        await _grant_vfolder_host(db, vfolder_host)
    await _ensure(
        db,
        ProjectRow,
        name=DEFAULT,
        domain_name=DEFAULT,
        resource_policy=DEFAULT,
        description="Default project",
    )
    await _ensure(db, ScalingGroupRow, name=DEFAULT, is_default=True, description="Default group")
    await _ensure(db, ScalingGroupForDomainRow, scaling_group=DEFAULT, domain_name=DEFAULT)
    project_id = await db.scalar(
        select(ProjectRow.id).where(ProjectRow.domain_name == DEFAULT, ProjectRow.name == DEFAULT)
    )
    user = await db.scalar(select(UserRow).where(UserRow.email == email))
    result = BootstrapResult(username, email, None, None, None)
    if user is None:
        result.password = password or secrets.token_urlsafe(12)
        user = UserRow(
            username=username,
            email=email,
            password_hash=await asyncio.to_thread(hash_password, result.password),
            domain_name=DEFAULT,
            role="superadmin",
            status="active",
            resource_policy=DEFAULT,
            full_name="Administrator",
        )
        db.add(user)
        await db.flush()
    await _ensure(db, ProjectMemberRow, project_id=project_id, user_id=user.id)
    has_key = await db.scalar(select(KeypairRow.access_key).where(KeypairRow.user_id == user.id))
    if has_key is None:
        generated = new_keypair()
        result.access_key = access_key or generated[0]
        result.secret_key = secret_key or generated[1]
        db.add(
            KeypairRow(
                access_key=result.access_key,
                secret_key=result.secret_key,
                user_id=user.id,
                is_admin=True,
                resource_policy=DEFAULT,
            )
        )
    await db.flush()
    return result
