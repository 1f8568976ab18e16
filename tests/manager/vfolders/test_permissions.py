"""Who may do what with one user folder: owner, invitees (ro, rw, wd), a project
member, an outsider, another domain's user and admin, the domain's admin, a
monitor and the superadmin. Invisible folders are NOT_FOUND, never data."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import grpc
import pytest
from google.protobuf.field_mask_pb2 import FieldMask

from bai.api.common.v1 import storage_pb2 as common
from bai.api.manager.v1 import vfolder_pb2 as pb
from tests.manager.callers import Caller, refused
from tests.manager.vfolders.conftest import World
from tests.rpc_errors import reason_of

RO, RW, WD = (
    common.MOUNT_PERMISSION_READ_ONLY,
    common.MOUNT_PERMISSION_READ_WRITE,
    common.MOUNT_PERMISSION_READ_WRITE_DELETE,
)


@dataclass
class Shared:
    folder: pb.VFolder
    ro: Caller
    rw: Caller


async def shared_folder(world: World, channel: grpc.aio.Channel, ro: Caller, rw: Caller) -> Shared:
    """A folder of the owner's, accepted by `ro` (read-only) and `rw` (read-write)."""
    folder = await world.create(channel, world.owner)
    for who, perm in ((ro, RO), (rw, RW)):
        made = await world.call(
            channel,
            world.owner,
            "InviteToVFolder",
            pb.InviteToVFolderRequest(
                vfolder_id=folder.id, invitee_emails=[who.email], permission=perm
            ),
        )
        await world.call(
            channel,
            who,
            "AcceptVFolderInvitation",
            pb.AcceptVFolderInvitationRequest(invitation_id=made.invitations[0].id),
        )
    return Shared(folder, ro, rw)


async def outcome(call: object) -> str:
    try:
        await call  # type: ignore[misc]
    except grpc.aio.AioRpcError as exc:
        return reason_of(exc)
    return "OK"


async def probe(
    world: World, channel: grpc.aio.Channel, who: Caller, folder: pb.VFolder
) -> dict[str, str]:
    fid = folder.id
    return {
        "get": await outcome(
            world.call(channel, who, "GetVFolder", pb.GetVFolderRequest(vfolder_id=fid))
        ),
        "ls": await outcome(
            world.call(channel, who, "ListFiles", pb.ListFilesRequest(vfolder_id=fid))
        ),
        "download": await outcome(
            world.call(
                channel,
                who,
                "RequestDownloadToken",
                pb.RequestDownloadTokenRequest(vfolder_id=fid, archive=True),
            )
        ),
        "mkdir": await outcome(
            world.call(
                channel,
                who,
                "Mkdir",
                pb.MkdirRequest(vfolder_id=fid, paths=[f"d-{who.user_id.hex[:6]}"], exist_ok=True),
            )
        ),
        "upload": await outcome(
            world.call(
                channel,
                who,
                "RequestUploadToken",
                pb.RequestUploadTokenRequest(vfolder_id=fid, path="u.bin"),
            )
        ),
        "rm": await outcome(
            world.call(
                channel, who, "DeleteFiles", pb.DeleteFilesRequest(vfolder_id=fid, paths=["gone"])
            )
        ),
        "update": await outcome(
            world.call(
                channel,
                who,
                "UpdateVFolder",
                pb.UpdateVFolderRequest(
                    vfolder=pb.VFolder(id=fid, cloneable=True),
                    update_mask=FieldMask(paths=["cloneable"]),
                ),
            )
        ),
        "share": await outcome(
            world.call(
                channel,
                who,
                "ShareVFolder",
                pb.ShareVFolderRequest(vfolder_id=fid, emails=[world.invitee.email], permission=RO),
            )
        ),
    }


HIDDEN = dict.fromkeys(
    ("get", "ls", "download", "mkdir", "upload", "rm", "update", "share"), "NOT_FOUND"
)
FORBIDDEN = "SCOPE_FORBIDDEN"


@pytest.mark.parametrize(
    ("caller", "expected"),
    [
        ("owner", dict.fromkeys(HIDDEN, "OK")),
        ("ro", {**dict.fromkeys(HIDDEN, FORBIDDEN), "get": "OK", "ls": "OK", "download": "OK"}),
        (
            "rw",
            {
                **dict.fromkeys(HIDDEN, FORBIDDEN),
                **dict.fromkeys(("get", "ls", "download", "mkdir", "upload"), "OK"),
            },
        ),
        ("member", HIDDEN),
        ("outsider", HIDDEN),
        ("foreigner", HIDDEN),
        ("foreign_admin", HIDDEN),
        ("admin", dict.fromkeys(HIDDEN, "OK")),
        (
            "monitor",
            {
                **dict.fromkeys(HIDDEN, "READ_ONLY_ROLE"),
                "get": "OK",
                "ls": "OK",
                "download": "OK",
            },
        ),
        # The superadmin sees everything, but host permissions hold for everyone:
        # the default domain grants none on the fake proxy.
        (
            "root",
            {
                **dict.fromkeys(HIDDEN, "HOST_PERMISSION_DENIED"),
                **dict.fromkeys(("get", "ls", "mkdir", "rm"), "OK"),
            },
        ),
    ],
)
async def test_permission_matrix(
    world: World, channel: grpc.aio.Channel, caller: str, expected: dict[str, str]
) -> None:
    shared = await shared_folder(world, channel, world.invitee, world.invitee2)
    who = {"ro": shared.ro, "rw": shared.rw}.get(caller) or getattr(world, caller)
    assert await probe(world, channel, who, shared.folder) == expected


async def test_wd_share_allows_deleting_files_not_the_folder(
    world: World, channel: grpc.aio.Channel
) -> None:
    shared = await shared_folder(world, channel, world.invitee, world.invitee2)
    await world.call(
        channel,
        world.owner,
        "ShareVFolder",
        pb.ShareVFolderRequest(
            vfolder_id=shared.folder.id, emails=[shared.rw.email], permission=WD
        ),
    )
    seen = await probe(world, channel, shared.rw, shared.folder)
    assert seen["rm"] == "OK"
    assert seen["update"] == FORBIDDEN
    exc = await refused(
        world.call(
            channel,
            shared.rw,
            "DeleteVFolder",
            pb.DeleteVFolderRequest(vfolder_id=shared.folder.id),
        )
    )
    assert reason_of(exc) == FORBIDDEN


async def test_listing_across_tenants(world: World, channel: grpc.aio.Channel) -> None:
    shared = await shared_folder(world, channel, world.invitee, world.invitee2)
    fid = shared.folder.id

    async def ids(who: Caller, **fields: Any) -> set[str]:
        reply = await world.call(channel, who, "ListVFolders", pb.ListVFoldersRequest(**fields))
        return {f.id for f in reply.vfolders}

    assert fid in await ids(world.owner)
    assert fid in await ids(shared.ro)
    for who in (world.outsider, world.member, world.foreigner, world.admin, world.foreign_admin):
        assert fid not in await ids(who)
    assert fid in await ids(world.admin, all_users=True)
    assert fid in await ids(world.monitor, all_users=True)
    assert fid in await ids(world.root, all_users=True)
    assert fid not in await ids(world.foreign_admin, all_users=True)
    only_owner = await ids(world.admin, all_users=True, user_id=str(world.owner.user_id))
    assert fid in only_owner
    exc = await refused(
        world.call(channel, world.outsider, "ListVFolders", pb.ListVFoldersRequest(all_users=True))
    )
    assert reason_of(exc) == "ROLE_FORBIDDEN"


async def test_shares_are_shown_to_owners_only(world: World, channel: grpc.aio.Channel) -> None:
    shared = await shared_folder(world, channel, world.invitee, world.invitee2)
    req = pb.GetVFolderRequest(vfolder_id=shared.folder.id)
    mine = await world.call(channel, world.owner, "GetVFolder", req)
    assert {(s.email, s.permission) for s in mine.shares} == {
        (shared.ro.email, RO),
        (shared.rw.email, RW),
    }
    theirs = await world.call(channel, shared.ro, "GetVFolder", req)
    assert list(theirs.shares) == []
    assert theirs.vfolder.caller_permission == RO and not theirs.vfolder.is_owner


async def test_project_folder_permissions(world: World, channel: grpc.aio.Channel) -> None:
    folder = await world.create(channel, world.admin, project_id=str(world.project), permission=RO)
    member = await probe(world, channel, world.member, folder)
    assert member["get"] == member["ls"] == "OK"
    assert member["mkdir"] == member["update"] == FORBIDDEN
    for who in (world.outsider, world.foreigner, world.foreign_admin):
        assert await probe(world, channel, who, folder) == HIDDEN
    # A per-user override lifts one member to rw; unsharing drops them back.
    await world.call(
        channel,
        world.admin,
        "ShareVFolder",
        pb.ShareVFolderRequest(vfolder_id=folder.id, emails=[world.member.email], permission=RW),
    )
    assert (await probe(world, channel, world.member, folder))["mkdir"] == "OK"
    await world.call(
        channel,
        world.admin,
        "UnshareVFolder",
        pb.UnshareVFolderRequest(vfolder_id=folder.id, emails=[world.member.email]),
    )
    assert (await probe(world, channel, world.member, folder))["mkdir"] == FORBIDDEN
    exc = await refused(
        world.call(
            channel,
            world.admin,
            "ShareVFolder",
            pb.ShareVFolderRequest(
                vfolder_id=folder.id, emails=[world.outsider.email], permission=RW
            ),
        )
    )
    assert reason_of(exc) == "REFERENCE_NOT_FOUND"
    exc = await refused(
        world.call(
            channel, world.member, "DeleteVFolder", pb.DeleteVFolderRequest(vfolder_id=folder.id)
        )
    )
    assert reason_of(exc) == FORBIDDEN
