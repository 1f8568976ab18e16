"""Invitations (invite, list, accept, reject, cancel), leave, share and unshare."""

from __future__ import annotations

from typing import Any

import grpc

from bai.api.common.v1 import storage_pb2 as common
from bai.api.manager.v1 import vfolder_pb2 as pb
from tests.manager.callers import Caller, make_caller, refused
from tests.manager.vfolders.conftest import World
from tests.rpc_errors import reason_of, violated_fields

RO, RW, WD = (
    common.MOUNT_PERMISSION_READ_ONLY,
    common.MOUNT_PERMISSION_READ_WRITE,
    common.MOUNT_PERMISSION_READ_WRITE_DELETE,
)


async def invite(
    world: World, channel: grpc.aio.Channel, folder: pb.VFolder, *emails: str, perm: Any = RW
) -> list[pb.VFolderInvitation]:
    reply = await world.call(
        channel,
        world.owner,
        "InviteToVFolder",
        pb.InviteToVFolderRequest(
            vfolder_id=folder.id, invitee_emails=list(emails), permission=perm
        ),
    )
    return list(reply.invitations)


async def received(world: World, channel: grpc.aio.Channel, who: Caller, *states: Any) -> list[str]:
    reply = await world.call(
        channel,
        who,
        "ListVFolderInvitations",
        pb.ListVFolderInvitationsRequest(statuses=list(states)),
    )
    return [i.id for i in reply.invitations]


async def visible(world: World, channel: grpc.aio.Channel, who: Caller, folder: pb.VFolder) -> bool:
    try:
        await world.call(channel, who, "GetVFolder", pb.GetVFolderRequest(vfolder_id=folder.id))
    except grpc.aio.AioRpcError as exc:
        assert exc.code() == grpc.StatusCode.NOT_FOUND
        return False
    return True


async def test_invite_accept_leave(world: World, channel: grpc.aio.Channel) -> None:
    who = await make_caller(world.manager, "user", world.domain)
    folder = await world.create(channel, world.owner)
    [made] = await invite(world, channel, folder, who.email.upper(), perm=RO)
    assert made.status == pb.FOLDER_INVITATION_STATUS_PENDING
    assert (made.vfolder_name, made.inviter_email, made.invitee_email) == (
        folder.name,
        world.owner.email,
        who.email,
    )
    assert made.permission == RO
    # Re-inviting returns the pending invitation unchanged.
    assert [i.id for i in await invite(world, channel, folder, who.email)] == [made.id]
    assert made.id in await received(world, channel, who)
    sent = await world.call(
        channel,
        world.owner,
        "ListVFolderInvitations",
        pb.ListVFolderInvitationsRequest(direction=pb.FOLDER_INVITATION_DIRECTION_SENT),
    )
    assert made.id in [i.id for i in sent.invitations]
    assert not await visible(world, channel, who, folder)

    # Only the invitee answers it.
    accept = pb.AcceptVFolderInvitationRequest(invitation_id=made.id)
    exc = await refused(world.call(channel, world.outsider, "AcceptVFolderInvitation", accept))
    assert exc.code() == grpc.StatusCode.NOT_FOUND
    answered = await world.call(channel, who, "AcceptVFolderInvitation", accept)
    assert answered.invitation.status == pb.FOLDER_INVITATION_STATUS_ACCEPTED
    assert (await world.call(channel, who, "AcceptVFolderInvitation", accept)) == answered
    assert await visible(world, channel, who, folder)
    listed = await world.call(channel, who, "ListVFolders", pb.ListVFoldersRequest())
    assert folder.id in [f.id for f in listed.vfolders]
    exc = await refused(
        world.call(
            channel,
            who,
            "RejectVFolderInvitation",
            pb.RejectVFolderInvitationRequest(invitation_id=made.id),
        )
    )
    assert reason_of(exc) == "INVALID_STATE"
    exc = await refused(invite(world, channel, folder, who.email))
    assert exc.code() == grpc.StatusCode.ALREADY_EXISTS

    leave = pb.LeaveVFolderRequest(vfolder_id=folder.id)
    await world.call(channel, who, "LeaveVFolder", leave)
    assert not await visible(world, channel, who, folder)
    exc = await refused(world.call(channel, world.owner, "LeaveVFolder", leave))
    assert reason_of(exc) == "INVALID_STATE"


async def test_reject_and_cancel(world: World, channel: grpc.aio.Channel) -> None:
    a = await make_caller(world.manager, "user", world.domain)
    b = await make_caller(world.manager, "user", world.domain)
    folder = await world.create(channel, world.owner)
    first, second = await invite(world, channel, folder, a.email, b.email)
    rejected = await world.call(
        channel,
        a,
        "RejectVFolderInvitation",
        pb.RejectVFolderInvitationRequest(invitation_id=first.id),
    )
    assert rejected.invitation.status == pb.FOLDER_INVITATION_STATUS_REJECTED
    assert first.id in await received(world, channel, a, pb.FOLDER_INVITATION_STATUS_REJECTED)
    assert first.id not in await received(world, channel, a)
    # The invitee cannot cancel; the inviter can.
    cancel = pb.CancelVFolderInvitationRequest(invitation_id=second.id)
    exc = await refused(world.call(channel, b, "CancelVFolderInvitation", cancel))
    assert exc.code() == grpc.StatusCode.NOT_FOUND
    cancelled = await world.call(channel, world.owner, "CancelVFolderInvitation", cancel)
    assert cancelled.invitation.status == pb.FOLDER_INVITATION_STATUS_CANCELLED
    exc = await refused(
        world.call(
            channel,
            b,
            "AcceptVFolderInvitation",
            pb.AcceptVFolderInvitationRequest(invitation_id=second.id),
        )
    )
    assert reason_of(exc) == "INVALID_STATE"
    assert not await visible(world, channel, a, folder)
    assert not await visible(world, channel, b, folder)
    # After a rejection the user can be invited again.
    [again] = await invite(world, channel, folder, a.email)
    assert again.id != first.id


async def test_invitation_refusals(world: World, channel: grpc.aio.Channel) -> None:
    folder = await world.create(channel, world.owner)
    exc = await refused(invite(world, channel, folder, "nobody-at-all@example.com"))
    assert reason_of(exc) == "REFERENCE_NOT_FOUND"
    # Users of other domains are as unknown as nobody.
    exc = await refused(invite(world, channel, folder, world.foreigner.email))
    assert reason_of(exc) == "REFERENCE_NOT_FOUND"
    exc = await refused(invite(world, channel, folder, world.invitee.email, perm=WD))
    assert violated_fields(exc) == ["permission"]
    exc = await refused(invite(world, channel, folder, "not-an-email"))
    assert violated_fields(exc) == ["invitee_emails[0]"]
    exc = await refused(invite(world, channel, folder, world.owner.email))
    assert exc.code() == grpc.StatusCode.INVALID_ARGUMENT
    # Only the owner invites; project folders are shared, not invited to.
    exc = await refused(
        world.call(
            channel,
            world.admin,
            "InviteToVFolder",
            pb.InviteToVFolderRequest(vfolder_id=folder.id, invitee_emails=[world.invitee.email]),
        )
    )
    assert reason_of(exc) == "SCOPE_FORBIDDEN"
    exc = await refused(
        world.call(
            channel,
            world.outsider,
            "InviteToVFolder",
            pb.InviteToVFolderRequest(vfolder_id=folder.id, invitee_emails=[world.invitee.email]),
        )
    )
    assert exc.code() == grpc.StatusCode.NOT_FOUND
    project_folder = await world.create(channel, world.admin, project_id=str(world.project))
    exc = await refused(
        world.call(
            channel,
            world.admin,
            "InviteToVFolder",
            pb.InviteToVFolderRequest(
                vfolder_id=project_folder.id, invitee_emails=[world.invitee.email]
            ),
        )
    )
    assert reason_of(exc) == "INVALID_STATE"


async def test_accept_refuses_a_name_the_invitee_owns(
    world: World, channel: grpc.aio.Channel
) -> None:
    who = await make_caller(world.manager, "user", world.domain)
    folder = await world.create(channel, world.owner)
    await world.create(channel, who, folder.name)
    [made] = await invite(world, channel, folder, who.email)
    exc = await refused(
        world.call(
            channel,
            who,
            "AcceptVFolderInvitation",
            pb.AcceptVFolderInvitationRequest(invitation_id=made.id),
        )
    )
    assert exc.code() == grpc.StatusCode.ALREADY_EXISTS


async def test_share_and_unshare_user_folder(world: World, channel: grpc.aio.Channel) -> None:
    who = await make_caller(world.manager, "user", world.domain)
    folder = await world.create(channel, world.owner)
    share = pb.ShareVFolderRequest(vfolder_id=folder.id, emails=[who.email], permission=WD)
    # Not shared yet: ShareVFolder changes existing shares of user folders only.
    exc = await refused(world.call(channel, world.owner, "ShareVFolder", share))
    assert reason_of(exc) == "REFERENCE_NOT_FOUND"
    [made] = await invite(world, channel, folder, who.email, perm=RO)
    await world.call(
        channel,
        who,
        "AcceptVFolderInvitation",
        pb.AcceptVFolderInvitationRequest(invitation_id=made.id),
    )
    shares = await world.call(channel, world.owner, "ShareVFolder", share)
    assert [(s.email, s.permission) for s in shares.shares] == [(who.email, WD)]
    got = await world.call(channel, who, "GetVFolder", pb.GetVFolderRequest(vfolder_id=folder.id))
    assert got.vfolder.caller_permission == WD
    unshare = pb.UnshareVFolderRequest(vfolder_id=folder.id, emails=[who.email])
    await world.call(channel, world.owner, "UnshareVFolder", unshare)
    await world.call(channel, world.owner, "UnshareVFolder", unshare)  # idempotent
    assert not await visible(world, channel, who, folder)
    exc = await refused(world.call(channel, world.monitor, "UnshareVFolder", unshare))
    assert reason_of(exc) == "READ_ONLY_ROLE"
