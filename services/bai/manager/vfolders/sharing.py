"""Sharing: per-user permissions on folders, set directly (ShareVFolder) or by
invitation (user folders: invite, accept, reject, cancel, leave)."""

from __future__ import annotations

import uuid
from collections.abc import Sequence

from sqlalchemy import delete, func, select
from sqlalchemy.dialects.postgresql import insert
from sqlalchemy.ext.asyncio import AsyncSession

from bai.api.manager.v1 import vfolder_pb2 as pb
from bai.common.errors import AlreadyExists, FailedPrecondition, InvalidArgument, PermissionDenied
from bai.manager.admin.users import reference_not_found
from bai.manager.auth.principal import Principal
from bai.manager.db.identity import ProjectMemberRow, UserRow
from bai.manager.db.storage import VFolderInvitationRow, VFolderPermissionRow
from bai.manager.vfolders.creation import Owner, require_free_name
from bai.manager.vfolders.hosts import allowed_hosts_for
from bai.manager.vfolders.invitations import invitation_protos, load_addressed
from bai.manager.vfolders.lifecycle import invalid_state, require_ready, shares
from bai.manager.vfolders.permissions import (
    require_host_permission,
    require_manager,
    require_not_monitor,
)
from bai.manager.vfolders.records import load, now


async def users_by_email(
    db: AsyncSession, domain_name: str, emails: Sequence[str]
) -> list[UserRow]:
    """The users of `domain_name` with these emails, in order; anyone else (unknown,
    or in another domain) is REFERENCE_NOT_FOUND, saying nothing of who exists."""
    rows = await db.scalars(
        select(UserRow).where(
            func.lower(UserRow.email).in_([e.lower() for e in emails]),
            UserRow.domain_name == domain_name,
        )
    )
    by_email = {row.email.lower(): row for row in rows}
    missing = [e for e in emails if e.lower() not in by_email]
    if missing:
        error = reference_not_found("user")
        error.metadata["emails"] = ",".join(missing)[:512]
        raise error
    return [by_email[e.lower()] for e in emails]


async def invite(
    db: AsyncSession, p: Principal, vfolder_id: uuid.UUID, emails: Sequence[str], permission: str
) -> list[pb.VFolderInvitation]:
    loaded = await load(db, p, vfolder_id, for_update=True)
    row = loaded.row
    require_not_monitor(p)
    if row.ownership_type == "group":
        raise invalid_state("project folders are shared with ShareVFolder")
    if not loaded.access.is_owner:
        raise PermissionDenied("only the folder's owner invites", reason="SCOPE_FORBIDDEN")
    require_ready(loaded)
    require_host_permission(await allowed_hosts_for(db, p, row), row.host, "invite-others")
    invitees = await users_by_email(db, row.domain_name, emails)
    ids: list[uuid.UUID] = []
    for i, user in enumerate(invitees):
        if user.id == p.user_id:
            raise InvalidArgument.field(f"invitee_emails[{i}]", "you own this folder")
        shared = await db.scalar(
            select(VFolderPermissionRow.user_id).where(
                VFolderPermissionRow.vfolder_id == row.id,
                VFolderPermissionRow.user_id == user.id,
            )
        )
        if shared is not None:
            raise AlreadyExists(f"the folder is already shared with {user.email}")
        pending = await db.scalar(
            insert(VFolderInvitationRow)
            .values(
                id=uuid.uuid4(),
                vfolder_id=row.id,
                inviter_id=p.user_id,
                invitee_id=user.id,
                permission=permission,
                state="pending",
            )
            .on_conflict_do_nothing()
            .returning(VFolderInvitationRow.id)
        )
        if pending is None:  # a pending invitation exists: returned unchanged
            pending = await db.scalar(
                select(VFolderInvitationRow.id).where(
                    VFolderInvitationRow.vfolder_id == row.id,
                    VFolderInvitationRow.invitee_id == user.id,
                    VFolderInvitationRow.state == "pending",
                )
            )
        assert pending is not None
        ids.append(pending)
    return await invitation_protos(db, ids)


async def accept(db: AsyncSession, p: Principal, invitation_id: uuid.UUID) -> pb.VFolderInvitation:
    invitation, folder = await load_addressed(db, p, invitation_id, as_invitee=True)
    require_not_monitor(p)
    if invitation.state in ("rejected", "canceled"):
        raise invalid_state(f"the invitation was {invitation.state}")
    if invitation.state == "pending":
        mine = Owner("user", p.user_id, p.domain_name, 0)
        await require_free_name(db, mine, folder.name)
        await db.execute(
            insert(VFolderPermissionRow)
            .values(vfolder_id=folder.id, user_id=p.user_id, permission=invitation.permission)
            .on_conflict_do_update(
                index_elements=["vfolder_id", "user_id"],
                set_={"permission": invitation.permission},
            )
        )
        invitation.state, invitation.modified_at = "accepted", now()
        await db.flush()
    return (await invitation_protos(db, [invitation.id]))[0]


async def answer(
    db: AsyncSession, p: Principal, invitation_id: uuid.UUID, *, as_invitee: bool
) -> pb.VFolderInvitation:
    """Reject (the invitee) or cancel (the inviter) a pending invitation."""
    invitation, _ = await load_addressed(db, p, invitation_id, as_invitee=as_invitee)
    require_not_monitor(p)
    final = "rejected" if as_invitee else "canceled"
    if invitation.state == "pending":
        invitation.state, invitation.modified_at = final, now()
        await db.flush()
    elif invitation.state != final:
        raise invalid_state(f"the invitation was already {invitation.state}")
    return (await invitation_protos(db, [invitation.id]))[0]


async def share(
    db: AsyncSession, p: Principal, vfolder_id: uuid.UUID, emails: Sequence[str], permission: str
) -> list[pb.VFolderShare]:
    """Project folders: per-member permissions. User folders: change the
    permission of users it is already shared with."""
    loaded = await load(db, p, vfolder_id, for_update=True)
    require_manager(p, loaded.access)
    row = loaded.row
    require_host_permission(
        await allowed_hosts_for(db, p, row), row.host, "set-user-specific-permission"
    )
    users = await users_by_email(db, row.domain_name, emails)
    ids = [u.id for u in users]
    if row.ownership_type == "group":
        members = set(
            await db.scalars(
                select(ProjectMemberRow.user_id).where(
                    ProjectMemberRow.project_id == row.project_id,
                    ProjectMemberRow.user_id.in_(ids),
                )
            )
        )
        eligible = members
    else:
        eligible = set(
            await db.scalars(
                select(VFolderPermissionRow.user_id).where(
                    VFolderPermissionRow.vfolder_id == row.id,
                    VFolderPermissionRow.user_id.in_(ids),
                )
            )
        )
    outsiders = [u.email for u in users if u.id not in eligible]
    if outsiders:
        raise FailedPrecondition(
            "not a project member" if row.ownership_type == "group" else "not shared with",
            reason="REFERENCE_NOT_FOUND",
            metadata={"reference": "user", "emails": ",".join(outsiders)[:512]},
        )
    for user_id in ids:
        await db.execute(
            insert(VFolderPermissionRow)
            .values(vfolder_id=row.id, user_id=user_id, permission=permission)
            .on_conflict_do_update(
                index_elements=["vfolder_id", "user_id"], set_={"permission": permission}
            )
        )
    chosen = {str(i) for i in ids}
    return [s for s in await shares(db, row.id) if s.user_id in chosen]


async def unshare(
    db: AsyncSession, p: Principal, vfolder_id: uuid.UUID, emails: Sequence[str]
) -> None:
    loaded = await load(db, p, vfolder_id, for_update=True)
    require_manager(p, loaded.access)
    users = select(UserRow.id).where(func.lower(UserRow.email).in_([e.lower() for e in emails]))
    await db.execute(
        delete(VFolderPermissionRow).where(
            VFolderPermissionRow.vfolder_id == loaded.row.id,
            VFolderPermissionRow.user_id.in_(users.scalar_subquery()),
        )
    )


async def leave(db: AsyncSession, p: Principal, vfolder_id: uuid.UUID) -> None:
    loaded = await load(db, p, vfolder_id)
    if loaded.row.ownership_type == "group":
        raise invalid_state("project folders cannot be left")
    if loaded.access.is_owner:
        raise invalid_state("you own this folder")
    require_not_monitor(p)
    await db.execute(
        delete(VFolderPermissionRow).where(
            VFolderPermissionRow.vfolder_id == loaded.row.id,
            VFolderPermissionRow.user_id == p.user_id,
        )
    )
