"""Callers of any role for admin API tests, made directly in the database so that
these tests do not depend on the User API; plus signed calls and audit lookups."""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import Awaitable
from dataclasses import dataclass
from typing import Any

import grpc
import pytest
from sqlalchemy import select

from bai.common import signing
from bai.manager.auth.passwords import hash_password
from bai.manager.db.audit import AuditLogRow
from bai.manager.db.identity import DomainRow, KeypairRow, ProjectMemberRow, ProjectRow, UserRow
from tests.manager.fixtures import ManagerHandle, unique

_PASSWORD_HASH: list[str] = []


@dataclass
class Caller:
    user_id: uuid.UUID
    email: str
    domain: str
    access_key: str
    secret_key: str

    def metadata(self, method: str) -> list[tuple[str, str]]:
        return signing.signed_metadata(self.access_key, self.secret_key, method)


async def invoke(
    channel: grpc.aio.Channel, stub_cls: Any, who: Caller, name: str, request: Any
) -> Any:
    """Call `name` on a fresh stub of `stub_cls`, signed by `who`."""
    service = stub_cls.__name__.removesuffix("Stub")
    method = f"/bai.api.manager.v1.{service}/{name}"
    return await getattr(stub_cls(channel), name)(request, metadata=who.metadata(method))


async def refused(call: Awaitable[Any]) -> grpc.aio.AioRpcError:
    with pytest.raises(grpc.aio.AioRpcError) as info:
        await call
    return info.value


async def superadmin(manager: ManagerHandle) -> Caller:
    async with manager.ctx.sessions() as db:
        user = await db.scalar(
            select(UserRow)
            .join(KeypairRow, KeypairRow.user_id == UserRow.id)
            .where(KeypairRow.access_key == manager.admin_access_key)
        )
    assert user is not None
    return Caller(
        user.id, user.email, user.domain_name, manager.admin_access_key, manager.admin_secret_key
    )


async def make_domain(manager: ManagerHandle) -> str:
    name = unique("dom")
    async with manager.ctx.sessions() as db, db.begin():
        db.add(DomainRow(name=name))
    return name


async def make_project(manager: ManagerHandle, domain: str, policy: str = "default") -> uuid.UUID:
    async with manager.ctx.sessions() as db, db.begin():
        row = ProjectRow(name=unique("prj"), domain_name=domain, resource_policy=policy)
        db.add(row)
        await db.flush()
        return row.id


async def make_caller(
    manager: ManagerHandle,
    role: str,
    domain: str = "default",
    *,
    projects: tuple[uuid.UUID, ...] = (),
    keypair_policy: str = "default",
    user_policy: str = "default",
    status: str = "active",
) -> Caller:
    """A user of `role` with one keypair, written straight to the database."""
    if not _PASSWORD_HASH:
        _PASSWORD_HASH.append(await asyncio.to_thread(hash_password, "test-password-1"))
    name = unique(role)
    access_key, secret_key = signing.new_keypair()
    async with manager.ctx.sessions() as db, db.begin():
        user = UserRow(
            username=name,
            email=f"{name}@example.com",
            password_hash=_PASSWORD_HASH[0],
            domain_name=domain,
            role=role,
            status=status,
            resource_policy=user_policy,
        )
        db.add(user)
        await db.flush()
        db.add(
            KeypairRow(
                access_key=access_key,
                secret_key=secret_key,
                user_id=user.id,
                is_admin=role in ("superadmin", "admin"),
                resource_policy=keypair_policy,
            )
        )
        for project_id in projects:
            db.add(ProjectMemberRow(project_id=project_id, user_id=user.id))
    return Caller(user.id, user.email, domain, access_key, secret_key)


async def audit_rows(manager: ManagerHandle, entity_id: str) -> list[AuditLogRow]:
    async with manager.ctx.sessions() as db:
        query = select(AuditLogRow).where(AuditLogRow.entity_id == entity_id)
        return list((await db.execute(query.order_by(AuditLogRow.created_at))).scalars())
