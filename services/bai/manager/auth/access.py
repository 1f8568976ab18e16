"""Authorization rules as pure functions over a Principal.

Visibility: an object in another domain is NOT_FOUND (never a hint that it
exists). Power: a visible object the caller may not change is
PERMISSION_DENIED with ROLE_FORBIDDEN, or READ_ONLY_ROLE for monitors.
"""

from __future__ import annotations

import uuid
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


def may_change_role_of(p: Principal, user_id: uuid.UUID) -> bool:
    """Nobody changes their own role (an admin would escalate or lock themselves out)."""
    return p.user_id != user_id


def reads_every_policy(p: Principal) -> bool:
    """Resource policies: everyone but role USER reads all of them."""
    return p.role is not Role.USER


def require_scaling_group_reader(p: Principal) -> None:
    """Get/List of scaling groups: role USER has ListAllowedScalingGroups instead."""
    if p.role is Role.USER:
        raise PermissionDenied(
            "users list their scaling groups with ListAllowedScalingGroups",
            reason="ROLE_FORBIDDEN",
        )


def gets_user_view_of_scaling_groups(p: Principal) -> bool:
    """Role USER sees public scaling groups only, without driver and driver options."""
    return p.role is Role.USER


def can_read_project_of(p: Principal, domain_name: str, project_id: uuid.UUID) -> bool:
    """Members read their projects; admins and monitors every project of their domain."""
    return can_read_domain_objects(p, domain_name) or project_id in p.project_ids


def audit_scope(p: Principal) -> tuple[str | None, uuid.UUID | None]:
    """(domain, actor) every audit entry the caller reads must match; None is any."""
    if p.role is Role.SUPERADMIN:
        return None, None
    if p.role in (Role.ADMIN, Role.MONITOR):
        return p.domain_name, None
    return None, p.user_id


def require_writer(p: Principal) -> None:
    """Administrative writes: monitors never write, plain users never administer."""
    if p.role is Role.MONITOR:
        raise PermissionDenied("monitors cannot change anything", reason="READ_ONLY_ROLE")
    if p.role is Role.USER:
        raise PermissionDenied("users cannot administer", reason="ROLE_FORBIDDEN")


def require_create_scope(p: Principal, domain_name: str) -> None:
    """Creating in a domain: superadmins anywhere, admins only in their own."""
    require_writer(p)
    if p.role is not Role.SUPERADMIN and p.domain_name != domain_name:
        raise PermissionDenied("you may not act in another domain", reason="SCOPE_FORBIDDEN")


def require_user_manageable(p: Principal, domain_name: str, role: Role, what: str) -> None:
    """Writes on an existing user (or their keypairs): superadmins on anyone;
    admins on the non-superadmin users of their own domain."""
    require_writer(p)
    require_domain_visible(p, domain_name, what)
    if role is Role.SUPERADMIN and p.role is not Role.SUPERADMIN:
        raise PermissionDenied("only a superadmin may manage a superadmin", reason="ROLE_FORBIDDEN")


def can_see_user(p: Principal, user_id: uuid.UUID, domain_name: str) -> bool:
    """Superadmins; admins and monitors of the user's domain; the user themselves."""
    return p.user_id == user_id or can_read_domain_objects(p, domain_name)
