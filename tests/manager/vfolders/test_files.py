"""Files through the manager (mkdir, list, move, delete), transfer tokens, usage
and quotas, against the fake proxy's directories."""

from __future__ import annotations

import grpc
import pytest
from google.protobuf.duration_pb2 import Duration

from bai.api.common.v1 import storage_pb2 as common
from bai.api.manager.v1 import vfolder_pb2 as pb
from bai.manager.db.policies import UserResourcePolicyRow
from tests.manager.callers import make_caller, refused
from tests.manager.fixtures import unique
from tests.manager.vfolders.conftest import World
from tests.manager.vfolders.fake_storage import CLIENT_ADDRESS, claims_of
from tests.rpc_errors import reason_of, violated_fields


async def test_mkdir_list_move_delete(world: World, channel: grpc.aio.Channel) -> None:
    folder = await world.create(channel, world.owner)
    root = world.folder_dir(folder)
    await world.call(
        channel,
        world.owner,
        "Mkdir",
        pb.MkdirRequest(vfolder_id=folder.id, paths=["a/b/c", "d"], parents=True),
    )
    assert (root / "a/b/c").is_dir() and (root / "d").is_dir()
    exc = await refused(
        world.call(
            channel, world.owner, "Mkdir", pb.MkdirRequest(vfolder_id=folder.id, paths=["d"])
        )
    )
    assert exc.code() == grpc.StatusCode.ALREADY_EXISTS
    (root / "a/file.txt").write_bytes(b"12345")

    listed = await world.call(
        channel, world.owner, "ListFiles", pb.ListFilesRequest(vfolder_id=folder.id, path="a")
    )
    entries = {e.name: e for e in listed.entries}
    assert [e.name for e in listed.entries] == ["b", "file.txt"]
    assert entries["file.txt"].size == 5 and entries["file.txt"].type == common.FILE_TYPE_FILE
    assert entries["file.txt"].path == "a/file.txt"
    assert entries["b"].type == common.FILE_TYPE_DIRECTORY
    assert entries["file.txt"].HasField("modified_at")
    first = await world.call(
        channel,
        world.owner,
        "ListFiles",
        pb.ListFilesRequest(vfolder_id=folder.id, path="a", page_size=1),
    )
    assert [e.name for e in first.entries] == ["b"] and first.next_page_token

    await world.call(
        channel,
        world.owner,
        "MoveFile",
        pb.MoveFileRequest(vfolder_id=folder.id, source_path="a/file.txt", target_path="d"),
    )
    assert (root / "d/file.txt").read_bytes() == b"12345"
    exc = await refused(
        world.call(
            channel,
            world.owner,
            "MoveFile",
            pb.MoveFileRequest(vfolder_id=folder.id, source_path="a/file.txt", target_path="d"),
        )
    )
    assert exc.code() == grpc.StatusCode.NOT_FOUND

    delete = pb.DeleteFilesRequest(vfolder_id=folder.id, paths=["a", "missing"])
    exc = await refused(world.call(channel, world.owner, "DeleteFiles", delete))
    assert reason_of(exc) == "PATH_TYPE_MISMATCH"
    delete.recursive = True
    reply = await world.call(channel, world.owner, "DeleteFiles", delete)
    # A recursive deletion continues in the background: follow its task to the end.
    assert reply.task_id
    tasks = world.manager.ctx.tasks
    events = [record async for _, record in tasks.watch(reply.task_id)]
    assert events[-1].status == "done" and events[-1].kind == "vfolder.delete-files"
    assert not (root / "a").exists() and (root / "d/file.txt").exists()


@pytest.mark.parametrize(
    "bad",
    [
        "../escape",
        "/etc/passwd",
        "a/../../x",
        "a\\b",
        "nul\x01x",
        "./a",
        "a//b",
        "x" * 256,
        "a/" * 2100,
    ],
)
async def test_paths_that_leave_the_folder_are_refused(
    world: World, channel: grpc.aio.Channel, bad: str
) -> None:
    folder = await world.create(channel, world.owner)
    for method, request, field in (
        ("Mkdir", pb.MkdirRequest(vfolder_id=folder.id, paths=[bad]), "paths[0]"),
        ("ListFiles", pb.ListFilesRequest(vfolder_id=folder.id, path=bad), "path"),
        (
            "MoveFile",
            pb.MoveFileRequest(vfolder_id=folder.id, source_path="x", target_path=bad),
            "target_path",
        ),
        ("DeleteFiles", pb.DeleteFilesRequest(vfolder_id=folder.id, paths=[bad]), "paths[0]"),
        (
            "RequestUploadToken",
            pb.RequestUploadTokenRequest(vfolder_id=folder.id, path=bad),
            "path",
        ),
        (
            "RequestDownloadToken",
            pb.RequestDownloadTokenRequest(vfolder_id=folder.id, path=bad),
            "path",
        ),
    ):
        exc = await refused(world.call(channel, world.owner, method, request))
        assert exc.code() == grpc.StatusCode.INVALID_ARGUMENT, (method, bad)
        assert violated_fields(exc) == [field], (method, bad)
    assert list(world.folder_dir(folder).iterdir()) == []


async def test_a_symlink_out_of_the_folder_is_refused_by_the_proxy(
    world: World, channel: grpc.aio.Channel
) -> None:
    folder = await world.create(channel, world.owner)
    (world.folder_dir(folder) / "out").symlink_to("/etc")
    exc = await refused(
        world.call(
            channel, world.owner, "ListFiles", pb.ListFilesRequest(vfolder_id=folder.id, path="out")
        )
    )
    assert exc.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert violated_fields(exc) == ["path"]


async def test_transfer_tokens_are_scoped(world: World, channel: grpc.aio.Channel) -> None:
    folder = await world.create(channel, world.owner)
    (world.folder_dir(folder) / "data.bin").write_bytes(b"x" * 10)
    up = await world.call(
        channel,
        world.owner,
        "RequestUploadToken",
        pb.RequestUploadTokenRequest(vfolder_id=folder.id, path="in/new.bin", size=7),
    )
    claims = claims_of(up.ticket.token)
    assert claims["op"] == "TRANSFER_OP_UPLOAD"
    assert claims["vfid"] == f"user-{world.owner.user_id}/{folder.id}"
    assert (claims["volume"], claims["relpath"], claims["max_size"]) == ("vol1", "in/new.bin", 7)
    assert claims["sub"] == str(world.owner.user_id)
    assert up.ticket.file_service_address == CLIENT_ADDRESS
    assert up.ticket.expires_at.seconds == claims["exp"]

    down = await world.call(
        channel,
        world.owner,
        "RequestDownloadToken",
        pb.RequestDownloadTokenRequest(
            vfolder_id=folder.id, path="data.bin", ttl=Duration(seconds=60)
        ),
    )
    assert claims_of(down.ticket.token)["op"] == "TRANSFER_OP_DOWNLOAD"
    archive = await world.call(
        channel,
        world.owner,
        "RequestDownloadToken",
        pb.RequestDownloadTokenRequest(vfolder_id=folder.id, archive=True),
    )
    assert claims_of(archive.ticket.token)["op"] == "TRANSFER_OP_ARCHIVE_DOWNLOAD"
    exc = await refused(
        world.call(
            channel,
            world.owner,
            "RequestDownloadToken",
            pb.RequestDownloadTokenRequest(vfolder_id=folder.id, path="absent.bin"),
        )
    )
    assert exc.code() == grpc.StatusCode.NOT_FOUND
    exc = await refused(
        world.call(
            channel,
            world.owner,
            "RequestUploadToken",
            pb.RequestUploadTokenRequest(
                vfolder_id=folder.id, path="x", ttl=Duration(seconds=86401)
            ),
        )
    )
    assert violated_fields(exc) == ["ttl"]
    # The configured client address (the Envoy gateway) wins over the proxy's.
    settings = world.manager.ctx.config.storage.proxies[world.proxy]
    settings.client_address = "https://gateway.example:8090"
    try:
        again = await world.call(
            channel,
            world.owner,
            "RequestUploadToken",
            pb.RequestUploadTokenRequest(vfolder_id=folder.id, path="y"),
        )
    finally:
        settings.client_address = ""
    assert again.ticket.file_service_address == "https://gateway.example:8090"


async def test_trashed_folders_take_no_file_operations(
    world: World, channel: grpc.aio.Channel
) -> None:
    folder = await world.create(channel, world.owner)
    await world.call(
        channel, world.owner, "DeleteVFolder", pb.DeleteVFolderRequest(vfolder_id=folder.id)
    )
    exc = await refused(
        world.call(channel, world.owner, "ListFiles", pb.ListFilesRequest(vfolder_id=folder.id))
    )
    assert reason_of(exc) == "INVALID_STATE"


async def test_usage_and_quota(world: World, channel: grpc.aio.Channel) -> None:
    policy = unique("qpol")
    async with world.manager.ctx.sessions() as db, db.begin():
        db.add(UserResourcePolicyRow(name=policy, max_quota_scope_size=1000))
    who = await make_caller(world.manager, "user", world.domain, user_policy=policy)
    folder = await world.create(channel, who)
    (world.folder_dir(folder) / "f").write_bytes(b"y" * 100)
    usage = await world.call(
        channel, who, "GetVFolderUsage", pb.GetVFolderUsageRequest(vfolder_id=folder.id)
    )
    assert (usage.file_count, usage.used_bytes) == (1, 100)
    (world.folder_dir(folder) / "g").write_bytes(b"y" * 100)
    cached = await world.call(
        channel, who, "GetVFolderUsage", pb.GetVFolderUsageRequest(vfolder_id=folder.id)
    )
    assert cached == usage  # answered from the 60 s cache

    scope = common.QuotaScope(type=common.QUOTA_SCOPE_TYPE_USER, id=str(who.user_id))
    mine = await world.call(
        channel,
        who,
        "GetVFolderQuota",
        pb.GetVFolderQuotaRequest(host=world.host, quota_scope=scope),
    )
    assert (mine.limit_bytes, mine.used_bytes) == (0, 200)
    exc = await refused(
        world.call(
            channel,
            world.outsider,
            "GetVFolderQuota",
            pb.GetVFolderQuotaRequest(host=world.host, quota_scope=scope),
        )
    )
    assert exc.code() == grpc.StatusCode.NOT_FOUND
    set_req = pb.SetVFolderQuotaRequest(host=world.host, quota_scope=scope, limit_bytes=500)
    assert (
        reason_of(await refused(world.call(channel, who, "SetVFolderQuota", set_req)))
        == "ROLE_FORBIDDEN"
    )
    assert (
        reason_of(await refused(world.call(channel, world.monitor, "SetVFolderQuota", set_req)))
        == "READ_ONLY_ROLE"
    )
    exc = await refused(world.call(channel, world.foreign_admin, "SetVFolderQuota", set_req))
    assert exc.code() == grpc.StatusCode.NOT_FOUND
    too_big = pb.SetVFolderQuotaRequest(host=world.host, quota_scope=scope, limit_bytes=1001)
    assert (
        reason_of(await refused(world.call(channel, world.admin, "SetVFolderQuota", too_big)))
        == "QUOTA_EXCEEDED"
    )
    done = await world.call(channel, world.admin, "SetVFolderQuota", set_req)
    assert (done.limit_bytes, done.used_bytes) == (500, 200)

    # An upload declared bigger than what is left is refused before any byte moves.
    exc = await refused(
        world.call(
            channel,
            who,
            "RequestUploadToken",
            pb.RequestUploadTokenRequest(vfolder_id=folder.id, path="big", size=301),
        )
    )
    assert exc.code() == grpc.StatusCode.RESOURCE_EXHAUSTED
    assert reason_of(exc) == "STORAGE_QUOTA_EXCEEDED"
    await world.call(
        channel,
        who,
        "RequestUploadToken",
        pb.RequestUploadTokenRequest(vfolder_id=folder.id, path="ok", size=300),
    )


async def test_storage_proxy_down_is_dependency_unavailable(
    world: World, channel: grpc.aio.Channel
) -> None:
    folder = await world.create(channel, world.owner)
    settings = world.manager.ctx.config.storage.proxies[world.proxy]
    real = settings.manager_address
    settings.manager_address, settings.call_timeout = "127.0.0.1:1", 2.0
    try:
        exc = await refused(
            world.call(channel, world.owner, "ListFiles", pb.ListFilesRequest(vfolder_id=folder.id))
        )
    finally:
        settings.manager_address, settings.call_timeout = real, 30.0
    assert exc.code() == grpc.StatusCode.UNAVAILABLE
    assert reason_of(exc) == "DEPENDENCY_UNAVAILABLE"
