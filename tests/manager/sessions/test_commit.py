"""CommitSession on the real manager with an agent written to the agent contract:
the task commits the main kernel and records a customized image its owner sees
and nobody else does; bad names, other people's and non-running sessions, the
image-count policy and an agent that refuses are each a precise error."""

from __future__ import annotations

import uuid
from typing import Any

import grpc
from sqlalchemy import select, update

from bai.api.manager.v1 import bgtask_pb2, bgtask_pb2_grpc, image_pb2, image_pb2_grpc
from bai.api.manager.v1 import session_pb2 as pb
from bai.common.errors import FailedPrecondition
from bai.manager.db.compute import AgentRow, ImageRow
from bai.manager.db.identity import UserRow
from bai.manager.db.policies import UserResourcePolicyRow
from tests.manager.callers import Caller, invoke, refused, superadmin
from tests.manager.fixtures import ManagerHandle, unique
from tests.manager.sessions.helpers import (
    GiB,
    agents,
    call,
    create,
    create_request,
    make_group,
    member,
    wait_status,
)
from tests.rpc_errors import reason_of

AGENT = {"cpu": "4", "mem": str(8 * GiB)}


async def _running(
    manager: ManagerHandle, channel: grpc.aio.Channel, who: Caller, group: str
) -> str:
    session = await create(channel, who, create_request(group))
    await wait_status(manager, session.id, {"RUNNING"})
    return session.id


async def _finished(channel: grpc.aio.Channel, who: Caller, task_id: str) -> Any:
    method = "/bai.api.manager.v1.BackgroundTaskService/WatchTask"
    stream = bgtask_pb2_grpc.BackgroundTaskServiceStub(channel).WatchTask(
        bgtask_pb2.WatchTaskRequest(task_id=task_id), metadata=who.metadata(method)
    )
    _ = [event async for event in stream]
    reply: Any = await invoke(
        channel,
        bgtask_pb2_grpc.BackgroundTaskServiceStub,
        who,
        "GetTask",
        bgtask_pb2.GetTaskRequest(task_id=task_id),
    )
    return reply.task


def _commit(session_id: str, name: str = "my-env", tag: str = "v1", **kw: Any) -> Any:
    return pb.CommitSessionRequest(session_id=session_id, image_name=name, image_tag=tag, **kw)


async def _customized(channel: grpc.aio.Channel, who: Caller) -> list[str]:
    reply: Any = await invoke(
        channel,
        image_pb2_grpc.ImageServiceStub,
        who,
        "ListImages",
        image_pb2.ListImagesRequest(customized_only=True),
    )
    return [image.canonical for image in reply.images]


async def test_a_commit_records_an_image_only_its_owner_sees(
    manager: ManagerHandle, channel: grpc.aio.Channel
) -> None:
    group = await make_group(manager)
    user, stranger = await member(manager), await member(manager)
    async with agents(channel, group, AGENT) as (agent,):
        session_id = await _running(manager, channel, user, group)
        request = _commit(session_id, request_id=str(uuid.uuid4()))
        reply = await call(channel, user, "CommitSession", request)
        task = await _finished(channel, user, reply.task_id)
        assert task.status == bgtask_pb2.BACKGROUND_TASK_STATUS_DONE, task.errors
        want = f"bai.local/customized/{user.user_id.hex}/my-env:v1"
        assert task.result["image"] == want

        (sent,) = agent.state.commits
        assert sent.target.canonical == want
        assert sent.labels["ai.backend.customized-image.owner"] == f"user:{user.user_id}"
        assert sent.labels["ai.backend.customized-image.source-session"] == session_id

        assert await _customized(channel, user) == [want]
        assert await _customized(channel, stranger) == []
        async with manager.ctx.sessions() as db:
            row = await db.scalar(select(ImageRow).where(ImageRow.canonical == want))
            held = await db.scalar(select(AgentRow.images).where(AgentRow.id == agent.agent_id))
        assert row is not None and row.owner_user_id == user.user_id and row.is_local
        assert row.labels["ai.backend.customized-image.name"] == "my-env"
        assert any(key.startswith(want) for key in held or [])

        # A retry with the same request_id gets the same task; other parameters conflict.
        again = await call(channel, user, "CommitSession", request)
        assert again.task_id == reply.task_id
        changed = _commit(session_id, tag="v2", request_id=request.request_id)
        exc = await refused(call(channel, user, "CommitSession", changed))
        assert reason_of(exc) == "REQUEST_ID_CONFLICT"
        assert len(agent.state.commits) == 1


async def test_bad_requests_are_refused_before_any_agent_is_asked(
    manager: ManagerHandle, channel: grpc.aio.Channel
) -> None:
    group = await make_group(manager)
    user, stranger = await member(manager), await member(manager)
    monitor = await member(manager, "monitor")
    async with agents(channel, group, AGENT) as (agent,):
        session_id = await _running(manager, channel, user, group)
        for name, tag in (
            ("", "v1"),
            ("My Env", "v1"),
            ("-env", "v1"),
            ("a" * 65, "v1"),
            ("env", ".v1"),
            ("env", "v" * 129),
            ("env", "a/b"),
        ):
            exc = await refused(
                call(channel, user, "CommitSession", _commit(session_id, name, tag))
            )
            assert reason_of(exc) == "INVALID_FIELD", (name, tag)
        exc = await refused(call(channel, user, "CommitSession", _commit("not-a-uuid")))
        assert reason_of(exc) == "INVALID_FIELD"
        exc = await refused(call(channel, stranger, "CommitSession", _commit(session_id)))
        assert exc.code() == grpc.StatusCode.NOT_FOUND
        exc = await refused(call(channel, monitor, "CommitSession", _commit(session_id)))
        assert reason_of(exc) == "READ_ONLY_ROLE"
        exc = await refused(call(channel, user, "CommitSession", _commit(str(uuid.uuid4()))))
        assert exc.code() == grpc.StatusCode.NOT_FOUND

        agent.state.hold = True
        pending = await create(channel, user, create_request(group))
        exc = await refused(call(channel, user, "CommitSession", _commit(pending.id)))
        assert reason_of(exc) == "SESSION_NOT_READY"
        assert agent.state.commits == []


async def test_the_image_count_policy_and_a_refusing_agent(
    manager: ManagerHandle, channel: grpc.aio.Channel
) -> None:
    policy = unique("one-image")
    async with manager.ctx.sessions() as db, db.begin():
        db.add(UserResourcePolicyRow(name=policy, max_customized_image_count=1))
    group = await make_group(manager)
    user = await member(manager)
    async with manager.ctx.sessions() as db, db.begin():
        await db.execute(
            update(UserRow).where(UserRow.id == user.user_id).values(resource_policy=policy)
        )
    async with agents(channel, group, AGENT) as (agent,):
        session_id = await _running(manager, channel, user, group)
        agent.state.commit_refusal = FailedPrecondition(
            "the process runtime cannot commit", reason="INVALID_STATE"
        )
        failed = await call(channel, user, "CommitSession", _commit(session_id, "refused"))
        task = await _finished(channel, user, failed.task_id)
        assert task.status == bgtask_pb2.BACKGROUND_TASK_STATUS_FAILED
        assert "cannot commit" in " ".join(task.errors)
        assert await _customized(channel, user) == []

        agent.state.commit_refusal = None
        first = await call(channel, user, "CommitSession", _commit(session_id, "first"))
        done = await _finished(channel, user, first.task_id)
        assert done.status == bgtask_pb2.BACKGROUND_TASK_STATUS_DONE
        exc = await refused(call(channel, user, "CommitSession", _commit(session_id, "second")))
        assert reason_of(exc) == "QUOTA_EXCEEDED"
        assert exc.code() == grpc.StatusCode.RESOURCE_EXHAUSTED

        # The superadmin commits under their own count, not the session owner's.
        root = await superadmin(manager)
        by_root = await call(channel, root, "CommitSession", _commit(session_id, "roots"))
        assert (
            (await _finished(channel, root, by_root.task_id))
            .result["image"]
            .startswith(f"bai.local/customized/{root.user_id.hex}/roots:")
        )
