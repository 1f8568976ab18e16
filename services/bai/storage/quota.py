"""Quota scopes and the arithmetic of their limits (pure).

A quota scope is all folders of one user or one project on one volume; it
is written "user:<uuid>" in tokens and logs and is a directory
"user-<hex>" on disk. A limit of 0 means unlimited.
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from typing import Literal

from bai.common.errors import InvalidArgument, ResourceExhausted

ScopeType = Literal["user", "project"]
SCOPE_TYPES: tuple[ScopeType, ...] = ("user", "project")


def parse_uuid(raw: str, field: str) -> str:
    """A UUID in any usual spelling, as 32 lowercase hex digits."""
    try:
        return uuid.UUID(raw).hex
    except (ValueError, AttributeError, TypeError):
        raise InvalidArgument.field(field, "must be a UUID") from None


@dataclass(frozen=True)
class QuotaScopeId:
    type: ScopeType
    id: str  # 32 hex digits

    @property
    def name(self) -> str:
        return f"{self.type}:{uuid.UUID(self.id)}"

    @property
    def dirname(self) -> str:
        return f"{self.type}-{self.id}"

    @classmethod
    def parse(cls, text: str, field: str = "quota_scope") -> QuotaScopeId:
        """From "user:<uuid>" / "project:<uuid>"."""
        kind, _, raw_id = text.partition(":")
        if kind not in SCOPE_TYPES:
            raise InvalidArgument.field(field, "must be user:<uuid> or project:<uuid>")
        return cls(kind, parse_uuid(raw_id, field))


@dataclass(frozen=True)
class VFolderId:
    scope: QuotaScopeId
    folder: str  # 32 hex digits

    @property
    def vfid(self) -> str:
        """The token claim: "<quota scope>/<folder id>"."""
        return f"{self.scope.name}/{self.folder}"

    @classmethod
    def parse(cls, vfid: str) -> VFolderId:
        scope, _, folder = vfid.rpartition("/")
        return cls(QuotaScopeId.parse(scope, "vfid"), parse_uuid(folder, "vfid"))


def remaining(limit: int, used: int) -> int | None:
    """Bytes still free in a scope; None when unlimited."""
    if limit <= 0:
        return None
    return max(limit - used, 0)


def check_fits(scope: QuotaScopeId, limit: int, used: int, adding: int) -> None:
    """Refuse a write of `adding` more bytes that would take usage over the limit."""
    free = remaining(limit, used)
    if free is not None and adding > free:
        raise ResourceExhausted(
            f"quota scope {scope.name} has {free} of {limit} bytes free; {adding} needed",
            reason="STORAGE_QUOTA_EXCEEDED",
            metadata={"quota_scope": scope.name, "limit": str(limit)},
        )


def check_not_full(scope: QuotaScopeId, limit: int, used: int) -> None:
    """Refuse new entries in a scope that is already at (or over) its limit."""
    if limit > 0 and used >= limit:
        raise ResourceExhausted(
            f"quota scope {scope.name} is full ({used} of {limit} bytes)",
            reason="STORAGE_QUOTA_EXCEEDED",
            metadata={"quota_scope": scope.name, "limit": str(limit)},
        )
