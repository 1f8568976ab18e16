"""resolve_mounts (what CreateSession calls) and folders held by live sessions."""

from __future__ import annotations

import uuid

import grpc
import pytest
from google.protobuf.field_mask_pb2 import FieldMask

from bai.api.common.v1 import storage_pb2 as common
from bai.api.common.v1.session_pb2 import VFolderMount
from bai.api.manager.v1 import session_pb2
from bai.api.manager.v1 import vfolder_pb2 as pb
from bai.common.errors import BaiError, InvalidArgument
from bai.manager.auth.principal import Principal, Role
from bai.manager.db.compute import SessionRow
from bai.manager.vfolders.mounts import resolve_mounts
from bai.manager.vfolders.storage_client import StorageProxies
from tests.manager.callers import make_caller, make_domain, refused
from tests.manager.fixtures import unique
from tests.manager.vfolders.conftest import World, grant_hosts, principal
from tests.rpc_errors import reason_of

RO, RW = common.MOUNT_PERMISSION_READ_ONLY, common.MOUNT_PERMISSION_READ_WRITE
Mount = session_pb2.SessionMountRequest


async def resolve(world: World, owner: Principal, *mounts: Mount) -> list[VFolderMount]:
    proxies = StorageProxies(lambda: world.manager.ctx.config.storage)
    try:
        async with world.manager.ctx.sessions() as db, db.begin():
            return await resolve_mounts(db, owner, list(mounts), proxies)
    finally:
        await proxies.close()


async def failure(world: World, owner: Principal, *mounts: Mount) -> BaiError:
    with pytest.raises(BaiError) as info:
        await resolve(world, owner, *mounts)
    return info.value


async def test_mounts_by_id_and_name(world: World, channel: grpc.aio.Channel) -> None:
    mine = await world.create(channel, world.owner)
    (world.folder_dir(mine) / "sub").mkdir()
    project_folder = await world.create(
        channel, world.admin, project_id=str(world.project), permission=RO
    )
    owner = principal(world.owner, projects=[world.project])
    by_id, by_name, narrowed = await resolve(
        world,
        owner,
        Mount(vfolder_id=mine.id, subpath="sub", mount_path="data"),
        Mount(vfolder_name=project_folder.name),
        Mount(vfolder_name=mine.name, permission=RO, mount_path="/data/ro-" + mine.name),
    )
    assert by_id.vfolder_id == mine.id and by_id.name == mine.name and by_id.host == world.host
    assert by_id.host_path == str((world.folder_dir(mine) / "sub").resolve())
    assert (by_id.kernel_path, by_id.subpath, by_id.permission) == (
        "/home/work/data",
        "sub",
        common.MOUNT_PERMISSION_READ_WRITE_DELETE,
    )
    assert by_id.quota_scope == mine.quota_scope
    assert by_name.vfolder_id == project_folder.id
    assert (by_name.kernel_path, by_name.permission) == (
        f"/home/work/{project_folder.name}",
        RO,
    )
    assert (narrowed.kernel_path, narrowed.permission) == (f"/data/ro-{mine.name}", RO)
    got = await world.call(
        channel, world.owner, "GetVFolder", pb.GetVFolderRequest(vfolder_id=mine.id)
    )
    assert got.vfolder.HasField("last_used_at")


async def test_mount_refusals(world: World, channel: grpc.aio.Channel) -> None:
    mine = await world.create(channel, world.owner)
    project_folder = await world.create(
        channel, world.admin, project_id=str(world.project), permission=RO
    )
    owner = principal(world.owner, projects=[world.project])
    # A project folder's ro cannot be widened.
    exc = await failure(world, owner, Mount(vfolder_id=project_folder.id, permission=RW))
    assert exc.reason == "SCOPE_FORBIDDEN"
    # Other users' folders are not found, whatever the caller's role.
    for who in (principal(world.outsider), principal(world.admin, Role.ADMIN)):
        assert (await failure(world, who, Mount(vfolder_id=mine.id))).reason == "NOT_FOUND"
        assert (await failure(world, who, Mount(vfolder_name=mine.name))).reason == "NOT_FOUND"
    bad = await failure(
        world,
        owner,
        Mount(vfolder_id=mine.id, vfolder_name=mine.name),
        Mount(),
        Mount(vfolder_id=mine.id, subpath="../x"),
    )
    assert isinstance(bad, InvalidArgument)
    assert [v.field for v in bad.violations] == ["mounts[0]", "mounts[1]", "mounts[2].subpath"]
    for target in ("/etc", "/home/work", "/", "/usr/lib", ".ssh", "a/../../x"):
        exc = await failure(world, owner, Mount(vfolder_id=mine.id, mount_path=target))
        assert isinstance(exc, InvalidArgument), target
    exc = await failure(
        world, owner, Mount(vfolder_id=mine.id), Mount(vfolder_name=mine.name, permission=RO)
    )
    assert isinstance(exc, InvalidArgument)  # both at /home/work/<name>
    await world.call(
        channel, world.owner, "DeleteVFolder", pb.DeleteVFolderRequest(vfolder_id=mine.id)
    )
    assert (await failure(world, owner, Mount(vfolder_id=mine.id))).reason == "INVALID_STATE"


async def test_mount_needs_the_hosts_mount_permission(
    world: World, channel: grpc.aio.Channel
) -> None:
    domain = await make_domain(world.manager)
    await grant_hosts(world.manager, domain, {world.host: ["create-vfolder"]})
    who = await make_caller(world.manager, "user", domain)
    folder = await world.create(channel, who)
    exc = await failure(world, principal(who), Mount(vfolder_id=folder.id))
    assert exc.reason == "HOST_PERMISSION_DENIED"


async def test_folders_mounted_by_live_sessions(world: World, channel: grpc.aio.Channel) -> None:
    folder = await world.create(channel, world.owner)
    session_id = uuid.uuid4()
    async with world.manager.ctx.sessions() as db, db.begin():
        db.add(
            SessionRow(
                id=session_id,
                name=unique("s"),
                domain_name=world.domain,
                project_id=world.project,
                user_id=world.owner.user_id,
                access_key=world.owner.access_key,
                scaling_group="default",
                image="cr.example/python:3",
                status="RUNNING",
                mounts=[{"vfolder_id": folder.id, "kernel_path": f"/home/work/{folder.name}"}],
            )
        )
    got = await world.call(
        channel, world.owner, "GetVFolder", pb.GetVFolderRequest(vfolder_id=folder.id)
    )
    assert list(got.vfolder.mounted_by_session_ids) == [str(session_id)]
    delete = pb.DeleteVFolderRequest(vfolder_id=folder.id)
    assert (
        reason_of(await refused(world.call(channel, world.owner, "DeleteVFolder", delete)))
        == "IN_USE"
    )
    rename = pb.UpdateVFolderRequest(
        vfolder=pb.VFolder(id=folder.id, name=unique("r")), update_mask=FieldMask(paths=["name"])
    )
    assert (
        reason_of(await refused(world.call(channel, world.owner, "UpdateVFolder", rename)))
        == "IN_USE"
    )
    async with world.manager.ctx.sessions() as db, db.begin():
        row = await db.get(SessionRow, session_id)
        assert row is not None
        row.status = "TERMINATED"
    await world.call(channel, world.owner, "UpdateVFolder", rename)
    trashed = await world.call(channel, world.owner, "DeleteVFolder", delete)
    assert trashed.vfolder.status == pb.FOLDER_STATUS_DELETE_PENDING
    assert list(trashed.vfolder.mounted_by_session_ids) == []
