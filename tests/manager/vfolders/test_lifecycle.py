"""Folder lifecycle over the real manager and a fake proxy: create, read, list,
update, trash, restore, purge, policies and host permissions."""

from __future__ import annotations

import grpc
from google.protobuf.field_mask_pb2 import FieldMask
from sqlalchemy import update

from bai.api.common.v1 import storage_pb2 as common
from bai.api.manager.v1 import vfolder_pb2 as pb
from bai.manager.db.identity import UserRow
from bai.manager.db.policies import UserResourcePolicyRow
from tests.manager.callers import make_caller, make_domain, refused
from tests.manager.fixtures import unique
from tests.manager.vfolders.conftest import World, grant_hosts
from tests.rpc_errors import reason_of, violated_fields


async def test_create_get_list(world: World, channel: grpc.aio.Channel) -> None:
    folder = await world.create(
        channel, world.owner, usage_mode=common.FOLDER_USAGE_MODE_MODEL, cloneable=True
    )
    assert folder.status == pb.FOLDER_STATUS_READY
    assert folder.ownership_type == pb.FOLDER_OWNERSHIP_TYPE_USER
    assert folder.user_id == str(world.owner.user_id)
    assert folder.creator == world.owner.email
    assert folder.is_owner and folder.cloneable
    assert folder.caller_permission == common.MOUNT_PERMISSION_READ_WRITE_DELETE
    assert folder.usage_mode == common.FOLDER_USAGE_MODE_MODEL
    assert folder.quota_scope == common.QuotaScope(
        type=common.QUOTA_SCOPE_TYPE_USER, id=str(world.owner.user_id)
    )
    assert world.folder_dir(folder).is_dir()

    got = await world.call(
        channel, world.owner, "GetVFolder", pb.GetVFolderRequest(vfolder_id=folder.id)
    )
    assert got.vfolder == folder
    listed = await world.call(channel, world.owner, "ListVFolders", pb.ListVFoldersRequest())
    assert folder.id in [f.id for f in listed.vfolders]


async def test_list_pages_in_name_order(world: World, channel: grpc.aio.Channel) -> None:
    who = await make_caller(world.manager, "user", world.domain)
    names = sorted(unique("pg") for _ in range(5))
    for name in reversed(names):
        await world.create(channel, who, name)
    seen: list[str] = []
    token = ""
    while True:
        page = await world.call(
            channel, who, "ListVFolders", pb.ListVFoldersRequest(page_size=2, page_token=token)
        )
        seen += [f.name for f in page.vfolders]
        token = page.next_page_token
        if not token:
            break
    assert seen == names
    bad = await refused(
        world.call(channel, who, "ListVFolders", pb.ListVFoldersRequest(page_token="nonsense"))
    )
    assert reason_of(bad) == "INVALID_PAGE_TOKEN"


async def test_names_are_checked_and_unique_per_owner(
    world: World, channel: grpc.aio.Channel
) -> None:
    for bad_name in ("", "..", "a/b", "x" * 65, "sp ace"):
        exc = await refused(world.create(channel, world.owner, bad_name or " "))
        assert exc.code() == grpc.StatusCode.INVALID_ARGUMENT, bad_name
        assert violated_fields(exc) == ["name"]
    name = unique("dup")
    await world.create(channel, world.owner, name)
    exc = await refused(world.create(channel, world.owner, name))
    assert exc.code() == grpc.StatusCode.ALREADY_EXISTS
    # Another owner may use the same name.
    await world.create(channel, world.outsider, name)


async def test_create_is_idempotent_per_request_id(world: World, channel: grpc.aio.Channel) -> None:
    name = unique("idem")
    first = await world.create(channel, world.owner, name, request_id="req-" + name)
    again = await world.create(channel, world.owner, name, request_id="req-" + name)
    assert again.id == first.id
    exc = await refused(
        world.create(channel, world.owner, unique("other"), request_id="req-" + name)
    )
    assert reason_of(exc) == "REQUEST_ID_CONFLICT"


async def test_unknown_host_and_host_permission(world: World, channel: grpc.aio.Channel) -> None:
    exc = await refused(world.create(channel, world.owner, host="nowhere:vol1"))
    assert reason_of(exc) == "REFERENCE_NOT_FOUND"
    domain = await make_domain(world.manager)
    await grant_hosts(world.manager, domain, {world.host: ["download-file"]})
    limited = await make_caller(world.manager, "user", domain)
    exc = await refused(world.create(channel, limited))
    assert exc.code() == grpc.StatusCode.PERMISSION_DENIED
    assert reason_of(exc) == "HOST_PERMISSION_DENIED"


async def test_max_vfolder_count(world: World, channel: grpc.aio.Channel) -> None:
    policy = unique("pol")
    async with world.manager.ctx.sessions() as db, db.begin():
        db.add(UserResourcePolicyRow(name=policy, max_vfolder_count=2))
    who = await make_caller(world.manager, "user", world.domain, user_policy=policy)
    first = await world.create(channel, who)
    await world.create(channel, who)
    exc = await refused(world.create(channel, who))
    assert exc.code() == grpc.StatusCode.RESOURCE_EXHAUSTED
    assert reason_of(exc) == "QUOTA_EXCEEDED"
    # A folder in the trash still counts; purged ones do not.
    await world.call(channel, who, "DeleteVFolder", pb.DeleteVFolderRequest(vfolder_id=first.id))
    assert reason_of(await refused(world.create(channel, who))) == "QUOTA_EXCEEDED"
    await world.call(channel, who, "PurgeVFolder", pb.PurgeVFolderRequest(vfolder_id=first.id))
    await world.create(channel, who)
    async with world.manager.ctx.sessions() as db, db.begin():
        await db.execute(
            update(UserRow).where(UserRow.id == who.user_id).values(resource_policy="default")
        )


async def test_project_folders(world: World, channel: grpc.aio.Channel) -> None:
    exc = await refused(world.create(channel, world.member, project_id=str(world.project)))
    assert reason_of(exc) == "SCOPE_FORBIDDEN"
    folder = await world.create(
        channel,
        world.admin,
        project_id=str(world.project),
        permission=common.MOUNT_PERMISSION_READ_ONLY,
    )
    assert folder.ownership_type == pb.FOLDER_OWNERSHIP_TYPE_PROJECT
    assert folder.quota_scope.type == common.QUOTA_SCOPE_TYPE_PROJECT
    assert folder.permission == common.MOUNT_PERMISSION_READ_ONLY
    seen = await world.call(
        channel, world.member, "GetVFolder", pb.GetVFolderRequest(vfolder_id=folder.id)
    )
    assert seen.vfolder.caller_permission == common.MOUNT_PERMISSION_READ_ONLY
    assert not seen.vfolder.is_owner
    listed = await world.call(channel, world.member, "ListVFolders", pb.ListVFoldersRequest())
    assert folder.id in [f.id for f in listed.vfolders]
    exc = await refused(world.create(channel, world.foreign_admin, project_id=str(world.project)))
    assert reason_of(exc) == "REFERENCE_NOT_FOUND"


async def test_update_options_and_rename(world: World, channel: grpc.aio.Channel) -> None:
    folder = await world.create(channel, world.owner)
    new_name = unique("renamed")
    changed = await world.call(
        channel,
        world.owner,
        "UpdateVFolder",
        pb.UpdateVFolderRequest(
            vfolder=pb.VFolder(id=folder.id, name=new_name, cloneable=True),
            update_mask=FieldMask(paths=["name", "cloneable"]),
        ),
    )
    assert changed.vfolder.name == new_name and changed.vfolder.cloneable
    exc = await refused(
        world.call(
            channel,
            world.owner,
            "UpdateVFolder",
            pb.UpdateVFolderRequest(
                vfolder=pb.VFolder(id=folder.id, name="x"),
                update_mask=FieldMask(paths=["name", "host"]),
            ),
        )
    )
    assert violated_fields(exc) == ["update_mask"]


async def test_trash_restore_purge(world: World, channel: grpc.aio.Channel) -> None:
    folder = await world.create(channel, world.owner)
    req = pb.DeleteVFolderRequest(vfolder_id=folder.id)
    trashed = (await world.call(channel, world.owner, "DeleteVFolder", req)).vfolder
    assert trashed.status == pb.FOLDER_STATUS_DELETE_PENDING
    again = (await world.call(channel, world.owner, "DeleteVFolder", req)).vfolder
    assert again.status == pb.FOLDER_STATUS_DELETE_PENDING
    assert world.folder_dir(folder).is_dir()  # files stay until purged

    listed = await world.call(channel, world.owner, "ListVFolders", pb.ListVFoldersRequest())
    assert folder.id not in [f.id for f in listed.vfolders]
    trash = await world.call(
        channel,
        world.owner,
        "ListVFolders",
        pb.ListVFoldersRequest(statuses=[pb.FOLDER_STATUS_DELETE_PENDING]),
    )
    assert folder.id in [f.id for f in trash.vfolders]

    # While it is in the trash its name is free; restoring then collides.
    twin = await world.create(channel, world.owner, folder.name)
    restore = pb.RestoreVFolderRequest(vfolder_id=folder.id)
    exc = await refused(world.call(channel, world.owner, "RestoreVFolder", restore))
    assert exc.code() == grpc.StatusCode.ALREADY_EXISTS
    await world.call(
        channel, world.owner, "DeleteVFolder", pb.DeleteVFolderRequest(vfolder_id=twin.id)
    )
    restored = (await world.call(channel, world.owner, "RestoreVFolder", restore)).vfolder
    assert restored.status == pb.FOLDER_STATUS_READY

    purge = pb.PurgeVFolderRequest(vfolder_id=folder.id)
    exc = await refused(world.call(channel, world.owner, "PurgeVFolder", purge))
    assert reason_of(exc) == "INVALID_STATE"
    await world.call(channel, world.owner, "DeleteVFolder", req)
    purged = (await world.call(channel, world.owner, "PurgeVFolder", purge)).vfolder
    assert purged.status == pb.FOLDER_STATUS_DELETE_COMPLETE
    assert not world.folder_dir(folder).exists()
    assert (await world.call(channel, world.owner, "PurgeVFolder", purge)).vfolder == purged
    exc = await refused(world.call(channel, world.owner, "RestoreVFolder", restore))
    assert reason_of(exc) == "INVALID_STATE"


async def test_list_hosts(world: World, channel: grpc.aio.Channel) -> None:
    hosts = await world.call(channel, world.owner, "ListVFolderHosts", pb.ListVFolderHostsRequest())
    mine = {h.name: h for h in hosts.hosts}
    assert {world.host, world.host2} <= set(mine)
    assert mine[world.host].backend == "vfs"
    assert "quota" in mine[world.host].capabilities
    assert "create-vfolder" in mine[world.host].permissions.permissions
    assert mine[world.host].capacity_bytes == 0  # users see no volume usage
    as_admin = await world.call(
        channel, world.admin, "ListVFolderHosts", pb.ListVFolderHostsRequest()
    )
    assert {h.name: h for h in as_admin.hosts}[world.host].capacity_bytes > 0
    domain = await make_domain(world.manager)
    nobody = await make_caller(world.manager, "user", domain)
    theirs = await world.call(channel, nobody, "ListVFolderHosts", pb.ListVFolderHostsRequest())
    assert world.host not in [h.name for h in theirs.hosts]


async def test_a_failed_purge_is_retried(world: World, channel: grpc.aio.Channel) -> None:
    folder = await world.create(channel, world.owner)
    await world.call(
        channel, world.owner, "DeleteVFolder", pb.DeleteVFolderRequest(vfolder_id=folder.id)
    )
    purge = pb.PurgeVFolderRequest(vfolder_id=folder.id)
    settings = world.manager.ctx.config.storage.proxies[world.proxy]
    real = settings.manager_address
    settings.manager_address, settings.call_timeout = "127.0.0.1:1", 2.0
    try:
        exc = await refused(world.call(channel, world.owner, "PurgeVFolder", purge))
    finally:
        settings.manager_address, settings.call_timeout = real, 30.0
    assert reason_of(exc) == "DEPENDENCY_UNAVAILABLE"
    got = await world.call(
        channel, world.owner, "GetVFolder", pb.GetVFolderRequest(vfolder_id=folder.id)
    )
    assert got.vfolder.status == pb.FOLDER_STATUS_DELETE_ERROR
    assert world.folder_dir(folder).is_dir()
    purged = await world.call(channel, world.owner, "PurgeVFolder", purge)
    assert purged.vfolder.status == pb.FOLDER_STATUS_DELETE_COMPLETE
    assert not world.folder_dir(folder).exists()
