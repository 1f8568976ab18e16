"""Virtual folders end to end: a real storage proxy, a real manager and a real agent
on Docker. A file uploaded through the storage proxy is read in a session that
mounts the folder; a file the session writes is downloaded; a read-only mount
refuses writes; a mounted folder cannot be trashed."""

from __future__ import annotations

import asyncio
import io
from collections.abc import AsyncIterator
from pathlib import Path

import grpc
import pytest

from bai.api.common.v1 import storage_pb2
from bai.api.manager.v1 import session_pb2
from bai.client import AsyncClient, Client, KeypairCredentials, errors
from bai.client.vfolder_transfers import download_file, upload_file
from bai.storage.testing import ProxyProcess
from tests.e2e.agent_process import AgentProcess, MiB
from tests.e2e.containers import IMAGE
from tests.e2e.records import wait_session
from tests.e2e.sdk import run_code, text
from tests.e2e.storage_proxy import HOST, storage_proxy
from tests.e2e.waits import DEADLINE
from tests.manager.fixtures import ManagerHandle, unique


@pytest.fixture
async def proxy(manager: ManagerHandle) -> AsyncIterator[ProxyProcess]:
    async with storage_proxy(manager) as running:
        yield running


def blocking(manager: ManagerHandle) -> Client:
    credentials = KeypairCredentials(manager.admin_access_key, manager.admin_secret_key)
    return Client(manager.address, credentials, timeout=DEADLINE)


async def test_files_move_between_clients_and_sessions_through_mounts(
    manager: ManagerHandle,
    proxy: ProxyProcess,
    agent: AgentProcess,
    client: AsyncClient,
    tmp_path: Path,
) -> None:
    data = (await client.vfolders.create_vfolder(name=unique("data"), host=HOST)).vfolder
    refs = (await client.vfolders.create_vfolder(name=unique("refs"), host=HOST)).vfolder
    local = tmp_path / "hello.txt"
    local.write_text("hello from the client\n")
    sync = blocking(manager)
    try:
        await asyncio.to_thread(upload_file, sync, data.id, local, "in/hello.txt")
        await asyncio.to_thread(upload_file, sync, refs.id, local, "readme.txt")

        created = await client.sessions.create_session(
            name=unique("e2e"),
            image=IMAGE,
            scaling_group=agent.group,
            resource_slots={"cpu": "1", "mem": str(256 * MiB)},
            enqueue_only=True,
            mounts=[
                session_pb2.SessionMountRequest(vfolder_id=data.id),
                session_pb2.SessionMountRequest(
                    vfolder_id=refs.id,
                    mount_path="reference",
                    permission=storage_pb2.MOUNT_PERMISSION_READ_ONLY,
                ),
            ],
        )
        session_id = created.session.id
        await wait_session(manager, session_id, {"RUNNING"})

        code = (
            f"import os\n"
            f"print(open('/home/work/{data.name}/in/hello.txt').read(), end='')\n"
            f"out = open('/home/work/{data.name}/out.txt', 'w')\n"
            f"out.write(f'written as uid {{os.getuid()}}'); out.close()\n"
            f"print(open('/home/work/reference/readme.txt').read(), end='')\n"
            f"try:\n"
            f"    open('/home/work/reference/nope.txt', 'w')\n"
            f"except OSError as exc:\n"
            f"    print('read-only:', exc.errno)\n"
        )
        chunks, result, _ = await run_code(client, session_id, code)
        assert text(chunks) == ("hello from the client\nhello from the client\nread-only: 30\n"), (
            text(chunks),
            result,
        )

        sink = io.BytesIO()
        await asyncio.to_thread(download_file, sync, data.id, "out.txt", sink)
        assert sink.getvalue() == b"written as uid 1000"

        # A folder a live session mounts cannot be moved to the trash.
        with pytest.raises(errors.BaiError) as refused:
            await client.vfolders.delete_vfolder(vfolder_id=data.id)
        assert refused.value.code == grpc.StatusCode.FAILED_PRECONDITION
        assert refused.value.reason == "IN_USE"

        await client.sessions.destroy_session(session_id=session_id)
        await wait_session(manager, session_id, {"TERMINATED"}, DEADLINE)
        await client.vfolders.delete_vfolder(vfolder_id=data.id)
    finally:
        sync.close()
