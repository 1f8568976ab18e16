"""Database lookups behind authentication: keypairs and users to Principals."""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from typing import Any

from sqlalchemy import Select, func, select
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from bai.manager.auth.client_address import IPNetwork, parse_networks
from bai.manager.auth.principal import Principal, Role
from bai.manager.db.identity import KeypairRow, ProjectMemberRow, UserRow


@dataclass(frozen=True)
class Identity:
    principal: Principal
    user_status: str
    # Empty means any client address.
    allowed_networks: tuple[IPNetwork, ...] = ()


@dataclass(frozen=True)
class KeyRecord:
    secret_key: str
    is_active: bool
    identity: Identity
    # Requests per rolling 15 minutes; 0 means no limit.
    rate_limit: int = 0


class CredentialLookup:
    def __init__(self, sessions: async_sessionmaker[AsyncSession]) -> None:
        self._sessions = sessions

    def _identity_query(self) -> Select[Any]:
        projects = (
            select(func.coalesce(func.array_agg(ProjectMemberRow.project_id), []))
            .where(ProjectMemberRow.user_id == UserRow.id)
            .scalar_subquery()
        )
        return select(UserRow, projects)

    @staticmethod
    def _identity(user: UserRow, projects: list[uuid.UUID] | None, access_key: str) -> Identity:
        principal = Principal(
            user_id=user.id,
            username=user.username,
            email=user.email,
            role=Role(user.role),
            domain_name=user.domain_name,
            access_key=access_key,
            project_ids=frozenset(projects or ()),
        )
        return Identity(principal, user.status, parse_networks(user.allowed_client_ip))

    async def by_access_key(self, access_key: str) -> KeyRecord | None:
        query = self._identity_query().add_columns(
            KeypairRow.secret_key, KeypairRow.is_active, KeypairRow.rate_limit
        )
        query = query.join(KeypairRow, KeypairRow.user_id == UserRow.id).where(
            KeypairRow.access_key == access_key
        )
        async with self._sessions() as db:
            row = (await db.execute(query)).first()
        if row is None:
            return None
        user, projects, secret, active, limit = row
        return KeyRecord(secret, active, self._identity(user, projects, access_key), limit)

    async def by_user_id(self, user_id: uuid.UUID) -> Identity | None:
        query = self._identity_query().where(UserRow.id == user_id)
        async with self._sessions() as db:
            row = (await db.execute(query)).first()
        if row is None:
            return None
        user, projects = row
        return self._identity(user, projects, "")

    async def by_login_name(self, name: str) -> tuple[Identity, str] | None:
        """(identity, password hash) for a username or email."""
        # Emails are unique regardless of case (see the users table), so match that way.
        query = self._identity_query().where(
            (UserRow.username == name) | (func.lower(UserRow.email) == name.lower())
        )
        async with self._sessions() as db:
            row = (await db.execute(query)).first()
        if row is None:
            return None
        user, projects = row
        return self._identity(user, projects, ""), user.password_hash
