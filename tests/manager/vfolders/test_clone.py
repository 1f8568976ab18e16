"""CloneVFolder: a CLONING folder at once, a background task with progress
events, READY when the proxy's copy is done (ERROR when it fails)."""

from __future__ import annotations

import uuid
from typing import Any

import grpc

from bai.api.manager.v1 import bgtask_pb2, bgtask_pb2_grpc
from bai.api.manager.v1 import vfolder_pb2 as pb
from bai.manager.auth.principal import Role
from bai.manager.bgtasks import BackgroundTasks, visible_to
from bai.manager.config import StorageProxyConfig
from tests.manager.callers import Caller, invoke, refused
from tests.manager.fixtures import unique
from tests.manager.vfolders.conftest import World, principal
from tests.manager.vfolders.fake_storage import SECRET
from tests.rpc_errors import reason_of


async def events_of(world: World, task_id: str) -> list[tuple[int, bgtask_pb2.BackgroundTask]]:
    tasks = BackgroundTasks(world.manager.ctx.redis)
    return [(kind, record.to_proto()) async for kind, record in tasks.watch(task_id)]


async def status_of(world: World, channel: grpc.aio.Channel, who: Caller, folder_id: str) -> int:
    got = await world.call(channel, who, "GetVFolder", pb.GetVFolderRequest(vfolder_id=folder_id))
    return int(got.vfolder.status)


async def test_clone_copies_in_the_background(world: World, channel: grpc.aio.Channel) -> None:
    # A cloneable project folder, cloned by a member of the project.
    source = await world.create(channel, world.admin, project_id=str(world.project), cloneable=True)
    (world.folder_dir(source) / "sub").mkdir()
    (world.folder_dir(source) / "sub/data").write_bytes(b"z" * 123)
    name = unique("copy")
    reply = await world.call(
        channel,
        world.member,
        "CloneVFolder",
        pb.CloneVFolderRequest(vfolder_id=source.id, target_name=name, request_id=unique("c")),
    )
    assert reply.vfolder.status == pb.FOLDER_STATUS_CLONING
    assert reply.vfolder.user_id == str(world.member.user_id) and reply.vfolder.name == name
    assert reply.task_id
    events = await events_of(world, reply.task_id)
    kinds = [kind for kind, _ in events]
    assert kinds[-1] == bgtask_pb2.BACKGROUND_TASK_EVENT_TYPE_DONE
    assert bgtask_pb2.BACKGROUND_TASK_EVENT_TYPE_UPDATED in kinds
    final = events[-1][1]
    assert final.kind == "vfolder.clone" and final.user_id == str(world.member.user_id)
    assert final.result["vfolder_id"] == reply.vfolder.id
    assert (final.current_progress, final.total_progress) == (123, 123)
    assert final.HasField("finished_at")
    assert await status_of(world, channel, world.member, reply.vfolder.id) == pb.FOLDER_STATUS_READY
    assert (world.folder_dir(reply.vfolder) / "sub/data").read_bytes() == b"z" * 123


async def test_clone_refusals(world: World, channel: grpc.aio.Channel) -> None:
    private = await world.create(channel, world.owner)
    clone = pb.CloneVFolderRequest(vfolder_id=private.id, target_name=unique("c"))
    # Invisible to an outsider; visible to an admin, but not cloneable for them.
    exc = await refused(world.call(channel, world.outsider, "CloneVFolder", clone))
    assert exc.code() == grpc.StatusCode.NOT_FOUND
    exc = await refused(world.call(channel, world.admin, "CloneVFolder", clone))
    assert reason_of(exc) == "NOT_CLONEABLE"
    exc = await refused(world.call(channel, world.monitor, "CloneVFolder", clone))
    assert reason_of(exc) == "READ_ONLY_ROLE"
    exc = await refused(
        world.call(
            channel,
            world.owner,
            "CloneVFolder",
            pb.CloneVFolderRequest(vfolder_id=private.id, target_name=private.name),
        )
    )
    assert exc.code() == grpc.StatusCode.ALREADY_EXISTS
    other = unique("px2")
    world.manager.ctx.config.storage.proxies[other] = StorageProxyConfig(
        manager_address=f"127.0.0.1:{world.storage.port}", secret=SECRET
    )
    try:
        exc = await refused(
            world.call(
                channel,
                world.owner,
                "CloneVFolder",
                pb.CloneVFolderRequest(
                    vfolder_id=private.id, target_name=unique("c"), target_host=f"{other}:vol1"
                ),
            )
        )
    finally:
        world.manager.ctx.config.storage.proxies.pop(other)
    assert reason_of(exc) == "VOLUME_CAPABILITY_MISSING"


async def test_a_failed_copy_leaves_an_error_folder(
    world: World, channel: grpc.aio.Channel
) -> None:
    source = await world.create(channel, world.owner)
    world.storage.fail_clone = True
    try:
        reply = await world.call(
            channel,
            world.owner,
            "CloneVFolder",
            pb.CloneVFolderRequest(
                vfolder_id=source.id, target_name=unique("c"), target_host=world.host2
            ),
        )
        events = await events_of(world, reply.task_id)
    finally:
        world.storage.fail_clone = False
    kind, final = events[-1]
    assert kind == bgtask_pb2.BACKGROUND_TASK_EVENT_TYPE_FAILED
    assert final.status == bgtask_pb2.BACKGROUND_TASK_STATUS_FAILED and final.errors
    assert await status_of(world, channel, world.owner, reply.vfolder.id) == pb.FOLDER_STATUS_ERROR


async def test_task_records_are_visible_to_their_starter_and_domain_admins(
    world: World, channel: grpc.aio.Channel
) -> None:
    source = await world.create(channel, world.owner)
    reply = await world.call(
        channel,
        world.owner,
        "CloneVFolder",
        pb.CloneVFolderRequest(vfolder_id=source.id, target_name=unique("c")),
    )
    await events_of(world, reply.task_id)
    record = await BackgroundTasks(world.manager.ctx.redis).get(reply.task_id)
    assert record is not None and record.domain_name == world.domain
    seen = {
        name: visible_to(principal(getattr(world, name), role), record)
        for name, role in (
            ("owner", Role.USER),
            ("outsider", Role.USER),
            ("admin", Role.ADMIN),
            ("monitor", Role.MONITOR),
            ("foreign_admin", Role.ADMIN),
            ("root", Role.SUPERADMIN),
        )
    }
    assert seen == {
        "owner": True,
        "outsider": False,
        "admin": True,
        "monitor": True,
        "foreign_admin": False,
        "root": True,
    }
    assert await BackgroundTasks(world.manager.ctx.redis).get(str(uuid.uuid4())) is None


async def test_background_task_service_reads_follows_and_refuses(
    world: World, channel: grpc.aio.Channel
) -> None:
    source = await world.create(channel, world.owner)
    (world.folder_dir(source) / "data").write_bytes(b"q" * 10)
    reply = await world.call(
        channel,
        world.owner,
        "CloneVFolder",
        pb.CloneVFolderRequest(vfolder_id=source.id, target_name=unique("c")),
    )

    async def tasks(who: Caller, name: str, request: object) -> object:
        return await invoke(channel, bgtask_pb2_grpc.BackgroundTaskServiceStub, who, name, request)

    method = "/bai.api.manager.v1.BackgroundTaskService/WatchTask"
    stream = bgtask_pb2_grpc.BackgroundTaskServiceStub(channel).WatchTask(
        bgtask_pb2.WatchTaskRequest(task_id=reply.task_id), metadata=world.owner.metadata(method)
    )
    kinds = [event.type async for event in stream]
    assert kinds[-1] == bgtask_pb2.BACKGROUND_TASK_EVENT_TYPE_DONE
    got: Any = await tasks(world.owner, "GetTask", bgtask_pb2.GetTaskRequest(task_id=reply.task_id))
    assert got.task.status == bgtask_pb2.BACKGROUND_TASK_STATUS_DONE
    assert got.task.result["vfolder_id"] == reply.vfolder.id
    admin_view: Any = await tasks(
        world.admin, "GetTask", bgtask_pb2.GetTaskRequest(task_id=reply.task_id)
    )
    assert admin_view.task.id == reply.task_id
    for who in (world.outsider, world.foreign_admin):
        exc = await refused(tasks(who, "GetTask", bgtask_pb2.GetTaskRequest(task_id=reply.task_id)))
        assert exc.code() == grpc.StatusCode.NOT_FOUND
    exc = await refused(
        tasks(world.owner, "CancelTask", bgtask_pb2.CancelTaskRequest(task_id=reply.task_id))
    )
    assert reason_of(exc) == "INVALID_STATE"
    exc = await refused(tasks(world.owner, "GetTask", bgtask_pb2.GetTaskRequest(task_id="")))
    assert reason_of(exc) == "INVALID_FIELD"
