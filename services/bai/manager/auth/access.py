"""Authorization rules as pure functions over a Principal.

Visibility: an object in another domain is NOT_FOUND (never a hint that it
exists). Power: a visible object the caller may not change is
PERMISSION_DENIED with ROLE_FORBIDDEN, or READ_ONLY_ROLE for monitors.
"""

from __future__ import annotations

from enum import Enum

from bai.common.errors import NotFound, PermissionDenied
from bai.manager.auth.principal import Principal, Role


class Access(Enum):
    READ = "read"
    WRITE = "write"


def require_superadmin(p: Principal, access: Access = Access.WRITE) -> None:
    if access is Access.WRITE and p.role is Role.MONITOR:
        raise PermissionDenied("monitors cannot change anything", reason="READ_ONLY_ROLE")
    if p.role is not Role.SUPERADMIN:
        raise PermissionDenied("only a superadmin may do this", reason="ROLE_FORBIDDEN")


def require_domain_visible(p: Principal, domain_name: str, what: str) -> None:
    if p.role is not Role.SUPERADMIN and p.domain_name != domain_name:
        raise NotFound(f"{what} not found")


def require_domain_admin(p: Principal, domain_name: str, what: str, access: Access) -> None:
    """Superadmins anywhere; admins in their own domain; monitors read there."""
    require_domain_visible(p, domain_name, what)
    if p.role in (Role.SUPERADMIN, Role.ADMIN):
        return
    if p.role is Role.MONITOR:
        if access is Access.READ:
            return
        raise PermissionDenied("monitors cannot change anything", reason="READ_ONLY_ROLE")
    raise PermissionDenied(f"users cannot {access.value} {what}s", reason="ROLE_FORBIDDEN")


def can_administer_domain(p: Principal, domain_name: str) -> bool:
    return p.role is Role.SUPERADMIN or (p.role is Role.ADMIN and p.domain_name == domain_name)


def can_read_domain_objects(p: Principal, domain_name: str) -> bool:
    """Admin-level read access (admins and monitors in their domain)."""
    if p.role is Role.SUPERADMIN:
        return True
    return p.role in (Role.ADMIN, Role.MONITOR) and p.domain_name == domain_name


def may_grant_role(p: Principal, role: Role) -> bool:
    """Only superadmins make superadmins; admins grant admin, user, monitor."""
    if p.role is Role.SUPERADMIN:
        return True
    return p.role is Role.ADMIN and role is not Role.SUPERADMIN
