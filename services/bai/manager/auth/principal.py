"""Who is calling, as established by authentication."""

from __future__ import annotations

import uuid
from dataclasses import dataclass, field
from enum import StrEnum


class Role(StrEnum):
    SUPERADMIN = "superadmin"
    ADMIN = "admin"
    USER = "user"
    MONITOR = "monitor"


@dataclass(frozen=True)
class Principal:
    user_id: uuid.UUID
    username: str
    email: str
    role: Role
    domain_name: str
    # Empty when the caller used a bearer token.
    access_key: str = ""
    project_ids: frozenset[uuid.UUID] = field(default_factory=frozenset)

    @property
    def is_superadmin(self) -> bool:
        return self.role is Role.SUPERADMIN
