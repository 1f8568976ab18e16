"""Session files end to end: the real manager, a real agent (in this process) with the
Docker runtime and the local kernel image. The agent is the final judge of paths: a
symlink the kernel plants towards the host's files is refused both ways."""

from __future__ import annotations

import asyncio
import hashlib
import io
import os
import shutil
import subprocess
import tempfile
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import Any

import grpc
import pytest

from bai.agent.main import RunningAgent, start_agent
from bai.api.common.v1 import execution_pb2, storage_pb2
from bai.api.manager.v1 import session_pb2 as pb
from bai.client import AsyncClient, KeypairCredentials, download_file, upload_file
from bai.client import errors as client_errors
from tests.agent.core.helpers import agent_config, eventually, plugins
from tests.manager.agents.fake_agent import agent_row
from tests.manager.fixtures import ManagerHandle, unique
from tests.manager.sessions.helpers import call, create, create_request, make_group, member

IMAGE = "bai.local/stable/python:3.11"
DOCKER_SOCKET = Path("/var/run/docker.sock")
SERVICE = "/bai.api.manager.v1.SessionService/"
MiB = 1 << 20


def _image_present() -> bool:
    try:
        done = subprocess.run(
            ["docker", "image", "inspect", IMAGE], capture_output=True, timeout=30, check=False
        )
    except (OSError, subprocess.TimeoutExpired):
        return False
    return done.returncode == 0


pytestmark = [
    pytest.mark.skipif(not DOCKER_SOCKET.exists(), reason="dockerd is not running here"),
    pytest.mark.skipif(
        DOCKER_SOCKET.exists() and not _image_present(),
        reason=f"{IMAGE} is not built (bai agent build-image)",
    ),
]


def _remove_containers(agent_id: str) -> None:
    listed = subprocess.run(
        ["docker", "ps", "-aq", "--filter", f"label=ai.bai.agent-id={agent_id}"],
        capture_output=True,
        text=True,
        check=False,
    )
    for container in listed.stdout.split():
        subprocess.run(["docker", "rm", "-f", container], capture_output=True, check=False)


@pytest.fixture
def state_dir() -> Iterator[Path]:
    # Unix socket paths are short: a short base directory.
    path = Path(tempfile.mkdtemp(prefix="bai-f-", dir="/tmp"))
    yield path
    shutil.rmtree(path, ignore_errors=True)


@pytest.fixture
async def docker_agent(
    manager: ManagerHandle, state_dir: Path
) -> AsyncIterator[tuple[RunningAgent, str]]:
    from bai.agent.runtime.docker import DockerRuntime

    group = await make_group(manager)
    config = agent_config(
        state_dir, agent_id=unique("files"), manager_addr=manager.address, scaling_group=group
    )
    agent = await start_agent(config, runtime=DockerRuntime(), plugins=plugins())
    agent.registry.backoff_min = 0.05
    try:

        async def alive() -> bool:
            try:
                return (await agent_row(manager, config.agent_id)).status == "ALIVE"
            except AssertionError:
                return False

        await eventually(alive, "the agent is ALIVE in the manager")
        yield agent, group
    finally:
        await agent.stop()
        await asyncio.to_thread(_remove_containers, config.agent_id)


async def _run(channel: grpc.aio.Channel, who: Any, session_id: str, code: str) -> bytes:
    spec = execution_pb2.ExecutionSpec(mode=execution_pb2.EXECUTION_MODE_QUERY, code=code)
    from bai.api.manager.v1 import session_pb2_grpc

    stream: Any = session_pb2_grpc.SessionServiceStub(channel).Execute(
        iter([pb.ExecuteRequest(session_id=session_id, start=spec)]),
        metadata=who.metadata(SERVICE + "Execute"),
    )
    replies = [reply async for reply in stream]
    assert replies[-1].result.status == execution_pb2.EXECUTION_STATUS_FINISHED, replies[-1]
    return b"".join(r.output.data for r in replies if r.WhichOneof("payload") == "output")


async def test_files_move_through_the_manager_to_a_docker_kernel(
    manager: ManagerHandle, channel: grpc.aio.Channel, docker_agent: tuple[RunningAgent, str]
) -> None:
    agent, group = docker_agent
    user = await member(manager)
    request = create_request(group, {"cpu": "1", "mem": str(256 * MiB)}, image=IMAGE)
    request.enqueue_only = False
    session = await create(channel, user, request)
    assert session.kernels and session.kernels[0].agent_id == agent.ctx.agent_id, session
    data = os.urandom(5 * MiB + 7)
    credentials = KeypairCredentials(user.access_key, user.secret_key)
    async with AsyncClient(manager.address, credentials) as client:
        stored = await upload_file(client, session.id, data, "in/blob.bin")
        assert (stored.path, stored.size) == ("in/blob.bin", len(data))
        # The kernel sees the bytes; it writes its own file and plants symlinks out.
        digest = await _run(
            channel,
            user,
            session.id,
            "import hashlib, os\n"
            "print(hashlib.sha256(open('/home/work/in/blob.bin', 'rb').read()).hexdigest())\n"
            "open('/home/work/out.txt', 'w').write('from the kernel')\n"
            "os.symlink('/etc/passwd', '/home/work/pw')\n"
            "os.symlink('/etc', '/home/work/etc-link')\n",
        )
        assert digest.decode().strip() == hashlib.sha256(data).hexdigest()
        sink = io.BytesIO()
        assert await download_file(client, session.id, "out.txt", sink) == 15
        assert sink.getvalue() == b"from the kernel"
        sink = io.BytesIO()
        await download_file(client, session.id, "in/blob.bin", sink)
        assert hashlib.sha256(sink.getvalue()).digest() == hashlib.sha256(data).digest()

        listed = await client.sessions.list_session_files(session_id=session.id)
        kinds = {e.name: e.type for e in listed.entries}
        assert kinds["pw"] == storage_pb2.FILE_TYPE_SYMLINK
        assert kinds["in"] == storage_pb2.FILE_TYPE_DIRECTORY

        passwd = await asyncio.to_thread(Path("/etc/passwd").read_bytes)
        for path in ("pw", "etc-link/passwd"):
            with pytest.raises(client_errors.InvalidArgument) as info:
                await download_file(client, session.id, path, io.BytesIO())
            assert info.value.reason == "INVALID_FIELD"
            with pytest.raises(client_errors.InvalidArgument):
                await upload_file(client, session.id, b"owned", path)
        with pytest.raises(client_errors.InvalidArgument):
            await client.sessions.list_session_files(session_id=session.id, path="etc-link")
        assert await asyncio.to_thread(Path("/etc/passwd").read_bytes) == passwd

        with pytest.raises(client_errors.FailedPrecondition) as mismatch:
            await client.sessions.list_session_files(session_id=session.id, path="out.txt")
        assert mismatch.value.reason == "PATH_TYPE_MISMATCH"
        with pytest.raises(client_errors.NotFound):
            await download_file(client, session.id, "nothing-here", io.BytesIO())

    await call(channel, user, "DestroySession", pb.DestroySessionRequest(session_id=session.id))
