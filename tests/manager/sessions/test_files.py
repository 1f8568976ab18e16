"""Session files through the real manager, relayed to a fake agent: round trips with
the SDK, who may move files, the upload stream's rules, path checks made before the
agent is asked, and the agent's failures passed on."""

from __future__ import annotations

import hashlib
import io
import os
from collections.abc import Iterable
from pathlib import Path
from typing import Any

import grpc
import pytest
from hypothesis import given
from hypothesis import strategies as st

from bai.agent.kernels.files import contained_path
from bai.api.common.v1 import storage_pb2
from bai.api.manager.v1 import session_pb2 as pb
from bai.api.manager.v1 import session_pb2_grpc as pb_grpc
from bai.client import AsyncClient, KeypairCredentials, download_file, upload_file
from bai.client import errors as client_errors
from bai.common.errors import InvalidArgument
from bai.manager.sessions.files import path_violation
from tests.manager.callers import Caller
from tests.manager.fixtures import ManagerHandle
from tests.manager.sessions.fake_agent import FakeAgent
from tests.manager.sessions.helpers import GiB, agents, create, create_request, make_group, member
from tests.rpc_errors import reason_of, violated_fields

PATH_PARTS = st.sampled_from(["a", "b", ".", "..", "", "/home/work", "/etc", "work", "x\x00"])

AGENT = {"cpu": "4", "mem": str(8 * GiB)}
SERVICE = "/bai.api.manager.v1.SessionService/"
MiB = 1 << 20


def _header(session_id: str, path: str, size: int, **kw: Any) -> pb.UploadSessionFileRequest:
    header = pb.SessionFileHeader(session_id=session_id, path=path, size=size, **kw)
    return pb.UploadSessionFileRequest(header=header)


def _chunk(data: bytes) -> pb.UploadSessionFileRequest:
    return pb.UploadSessionFileRequest(chunk=data)


async def _upload(
    channel: grpc.aio.Channel, who: Caller, requests: Iterable[pb.UploadSessionFileRequest]
) -> pb.UploadSessionFileResponse:
    stub = pb_grpc.SessionServiceStub(channel)
    metadata = who.metadata(SERVICE + "UploadSessionFile")
    reply: pb.UploadSessionFileResponse = await stub.UploadSessionFile(
        iter(list(requests)), metadata=metadata
    )
    return reply


async def _download(channel: grpc.aio.Channel, who: Caller, **fields: Any) -> bytes:
    stub = pb_grpc.SessionServiceStub(channel)
    stream: Any = stub.DownloadSessionFile(
        pb.DownloadSessionFileRequest(**fields),
        metadata=who.metadata(SERVICE + "DownloadSessionFile"),
    )
    return b"".join([reply.chunk async for reply in stream])


async def _list(channel: grpc.aio.Channel, who: Caller, **fields: Any) -> list[str]:
    stub = pb_grpc.SessionServiceStub(channel)
    reply = await stub.ListSessionFiles(
        pb.ListSessionFilesRequest(**fields), metadata=who.metadata(SERVICE + "ListSessionFiles")
    )
    return [entry.path for entry in reply.entries]


async def _refused(call: Any) -> grpc.aio.AioRpcError:
    with pytest.raises(grpc.aio.AioRpcError) as info:
        await call
    return info.value


def _client(manager: ManagerHandle, who: Caller) -> AsyncClient:
    return AsyncClient(manager.address, KeypairCredentials(who.access_key, who.secret_key))


async def test_a_5_mib_file_round_trips_with_the_sdk(
    manager: ManagerHandle, channel: grpc.aio.Channel
) -> None:
    group = await make_group(manager)
    user = await member(manager)
    async with agents(channel, group, AGENT) as (agent,):
        session = await create(channel, user, create_request(group, enqueue_only=False))
        kernel_id = session.kernels[0].id
        data = os.urandom(5 * MiB + 123)
        async with _client(manager, user) as client:
            stored = await upload_file(client, session.id, data, "inputs/blob.bin")
            assert (stored.path, stored.size) == ("inputs/blob.bin", len(data))
            # Six messages of at most 1 MiB reached the agent as one file.
            assert agent.state.files[kernel_id]["inputs/blob.bin"] == data
            sink = io.BytesIO()
            count = await download_file(
                client, session.id, "/home/work/inputs/blob.bin", sink, kernel_id=kernel_id
            )
            assert count == len(data)
            assert hashlib.sha256(sink.getvalue()).digest() == hashlib.sha256(data).digest()
            await upload_file(client, session.id, b"", "empty")
            assert await download_file(client, session.id, "empty", io.BytesIO()) == 0
            listed = await client.sessions.list_session_files(session_id=session.id)
            assert [(e.name, e.type) for e in listed.entries] == [
                ("empty", storage_pb2.FILE_TYPE_FILE),
                ("inputs", storage_pb2.FILE_TYPE_DIRECTORY),
            ]
            with pytest.raises(client_errors.NotFound):
                await download_file(client, session.id, "missing.txt", io.BytesIO())
        assert await _list(channel, user, session_id=session.id, path="inputs") == [
            "inputs/blob.bin"
        ]


async def test_paths_that_leave_home_work_are_refused_before_the_agent(
    manager: ManagerHandle, channel: grpc.aio.Channel
) -> None:
    group = await make_group(manager)
    user = await member(manager)
    async with agents(channel, group, AGENT) as (agent,):
        session = await create(channel, user, create_request(group, enqueue_only=False))
        for path in ("../x", "a/../../x", "/etc/passwd", "/home/workx/y", "/home/work/../x"):
            error = await _refused(_upload(channel, user, [_header(session.id, path, 0)]))
            assert (reason_of(error), violated_fields(error)) == ("INVALID_FIELD", ["header.path"])
            error = await _refused(_download(channel, user, session_id=session.id, path=path))
            assert (reason_of(error), violated_fields(error)) == ("INVALID_FIELD", ["path"])
            error = await _refused(_list(channel, user, session_id=session.id, path=path))
            assert (reason_of(error), violated_fields(error)) == ("INVALID_FIELD", ["path"])
        error = await _refused(_upload(channel, user, [_header(session.id, "a\x00b", 0)]))
        assert violated_fields(error) == ["header.path"]
        error = await _refused(_upload(channel, user, [_header(session.id, "", 0)]))
        assert violated_fields(error) == ["header.path"]
        error = await _refused(_download(channel, user, session_id=session.id, path=""))
        assert violated_fields(error) == ["path"]
        assert agent.state.file_calls == []
        # Inside /home/work, `..` that stays inside is the agent's to resolve.
        await _upload(channel, user, [_header(session.id, "a/../ok.txt", 2), _chunk(b"ok")])
        assert agent.state.file_calls == ["UploadFile a/../ok.txt"]


async def test_the_upload_stream_is_header_then_announced_bytes(
    manager: ManagerHandle, channel: grpc.aio.Channel
) -> None:
    group = await make_group(manager)
    user = await member(manager)
    async with agents(channel, group, AGENT) as (agent,):
        session = await create(channel, user, create_request(group, enqueue_only=False))
        files = agent.state.files.setdefault(session.kernels[0].id, {})
        await _upload(channel, user, [_header(session.id, "f", 3), _chunk(b"old")])

        error = await _refused(_upload(channel, user, [_chunk(b"x")]))
        assert reason_of(error) == "STREAM_OUT_OF_ORDER"
        second = [_header(session.id, "f", 1), _header(session.id, "f", 1)]
        assert reason_of(await _refused(_upload(channel, user, second))) == "STREAM_OUT_OF_ORDER"
        error = await _refused(_upload(channel, user, []))
        assert violated_fields(error) == ["header"]
        error = await _refused(_upload(channel, user, [_header(session.id, "f", -1)]))
        assert violated_fields(error) == ["header.size"]
        short = [_header(session.id, "f", 5), _chunk(b"new")]
        assert violated_fields(await _refused(_upload(channel, user, short))) == ["header.size"]
        long = [_header(session.id, "f", 2), _chunk(b"new")]
        assert violated_fields(await _refused(_upload(channel, user, long))) == ["chunk"]
        big = [_header(session.id, "f", MiB + 1), _chunk(b"x" * (MiB + 1))]
        assert violated_fields(await _refused(_upload(channel, user, big))) == ["chunk"]
        # Every refused upload was cancelled at the agent: the old file stays.
        assert files == {"f": b"old"}


async def test_who_may_move_files(manager: ManagerHandle, channel: grpc.aio.Channel) -> None:
    group = await make_group(manager)
    owner = await member(manager)
    stranger = await member(manager)
    monitor = await member(manager, "monitor")
    admin = await member(manager, "admin")
    async with agents(channel, group, AGENT):
        session = await create(channel, owner, create_request(group, enqueue_only=False))
        await _upload(channel, admin, [_header(session.id, "by-admin", 1), _chunk(b"a")])

        assert await _download(channel, monitor, session_id=session.id, path="by-admin") == b"a"
        assert await _list(channel, monitor, session_id=session.id) == ["by-admin"]
        error = await _refused(_upload(channel, monitor, [_header(session.id, "m", 0)]))
        assert reason_of(error) == "READ_ONLY_ROLE"

        error = await _refused(_upload(channel, stranger, [_header(session.id, "s", 0)]))
        assert error.code() == grpc.StatusCode.NOT_FOUND
        error = await _refused(_download(channel, stranger, session_id=session.id, path="by-admin"))
        assert error.code() == grpc.StatusCode.NOT_FOUND
        error = await _refused(_list(channel, stranger, session_id=session.id))
        assert error.code() == grpc.StatusCode.NOT_FOUND


async def test_files_need_a_running_kernel_of_the_session(
    manager: ManagerHandle, channel: grpc.aio.Channel
) -> None:
    group = await make_group(manager)
    idle_group = await make_group(manager)
    user = await member(manager)
    async with agents(channel, group, AGENT):
        pending = await create(channel, user, create_request(idle_group))
        error = await _refused(_upload(channel, user, [_header(pending.id, "f", 0)]))
        assert reason_of(error) == "SESSION_NOT_READY"
        error = await _refused(_download(channel, user, session_id=pending.id, path="f"))
        assert reason_of(error) == "SESSION_NOT_READY"
        error = await _refused(_list(channel, user, session_id=pending.id))
        assert reason_of(error) == "SESSION_NOT_READY"

        session = await create(channel, user, create_request(group, enqueue_only=False))
        other = pending.kernels[0].id
        error = await _refused(_list(channel, user, session_id=session.id, kernel_id=other))
        assert error.code() == grpc.StatusCode.NOT_FOUND
        error = await _refused(_list(channel, user, session_id=session.id, kernel_id="k-1"))
        assert violated_fields(error) == ["kernel_id"]
        error = await _refused(_upload(channel, user, [_header("nope", "f", 0)]))
        assert violated_fields(error) == ["header.session_id"]


async def test_the_agents_failures_come_back_with_their_reasons(
    manager: ManagerHandle, channel: grpc.aio.Channel
) -> None:
    group = await make_group(manager)
    user = await member(manager)
    async with agents(channel, group, AGENT) as (agent,):
        session = await create(channel, user, create_request(group, enqueue_only=False))
        error = await _refused(_download(channel, user, session_id=session.id, path="gone"))
        assert (error.code(), reason_of(error)) == (grpc.StatusCode.NOT_FOUND, "NOT_FOUND")
        await _stop_serving(agent)
        error = await _refused(_list(channel, user, session_id=session.id))
        assert reason_of(error) == "AGENT_UNAVAILABLE"
        error = await _refused(_upload(channel, user, [_header(session.id, "f", 1), _chunk(b"x")]))
        assert reason_of(error) == "AGENT_UNAVAILABLE"


async def _stop_serving(agent: FakeAgent) -> None:
    """The agent's AgentService goes away; its registry stream (and ALIVE row) stays."""
    await agent.server.stop(None)


@given(st.lists(PATH_PARTS, min_size=1, max_size=6).map("/".join))
def test_the_managers_path_check_never_refuses_what_the_agent_accepts(raw: str) -> None:
    # Nothing exists under this root: no symlinks, the agent's check is only lexical here.
    root = Path("/nonexistent-bai-root/k1")
    try:
        contained_path(root, raw)
        agent_accepts = True
    except InvalidArgument:
        agent_accepts = False
    if agent_accepts:
        assert path_violation(raw, required=False) is None, raw
