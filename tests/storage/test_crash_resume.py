"""Kill the storage proxy (a real `bai storage start`) mid-upload; the client resumes."""

from __future__ import annotations

import asyncio
import hashlib
import os
from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import grpc
import pytest

from bai.api.storage.v1 import file_pb2, file_pb2_grpc, storage_pb2_grpc
from bai.api.storage.v1 import storage_pb2 as pb
from bai.storage.testing import ProxyProcess, running_proxy
from tests.storage.conftest import AUTH, JWT_SECRET, MANAGER_TOKEN, folder_ref
from tests.storage.transfer_client import committed_at_least, upload

CHUNK = 1 << 20
SIZE = 8 * CHUNK + 12345


@pytest.fixture
def proxy_process(tmp_path: Path) -> Iterator[ProxyProcess]:
    with running_proxy(tmp_path, jwt_secret=JWT_SECRET, manager_token=MANAGER_TOKEN) as process:
        yield process


async def test_upload_resumes_after_the_proxy_is_killed(proxy_process: ProxyProcess) -> None:
    data = os.urandom(SIZE)
    digest = hashlib.sha256(data).hexdigest()
    ref = folder_ref()
    async with grpc.aio.insecure_channel(f"127.0.0.1:{proxy_process.manager_port}") as channel:
        storage = storage_pb2_grpc.StorageServiceStub(channel)
        await storage.CreateVFolder(pb.CreateVFolderRequest(vfolder=ref), metadata=AUTH)
        token = (
            await storage.IssueTransferToken(
                pb.IssueTransferTokenRequest(
                    op=pb.TRANSFER_OP_UPLOAD, vfolder=ref, relpath="big/file.bin"
                ),
                metadata=AUTH,
            )
        ).token
    header = file_pb2.UploadHeader(token=token, total_size=SIZE, sha256=digest)
    stalled = asyncio.Event()

    async def first_half() -> AsyncIterator[file_pb2.UploadRequest]:
        yield file_pb2.UploadRequest(header=header)
        for at in range(0, 4 * CHUNK, CHUNK):
            yield file_pb2.UploadRequest(chunk=data[at : at + CHUNK])
        await stalled.wait()  # the connection stays open until the proxy dies

    address = f"127.0.0.1:{proxy_process.client_port}"
    async with grpc.aio.insecure_channel(address) as channel:
        files = file_pb2_grpc.FileServiceStub(channel)
        call = asyncio.ensure_future(files.Upload(first_half()))
        await committed_at_least(files, token, 4 * CHUNK)
        proxy_process.kill()
        with pytest.raises(grpc.aio.AioRpcError) as caught:
            await call
        assert caught.value.code() == grpc.StatusCode.UNAVAILABLE
        stalled.set()

    proxy_process.start()
    async with grpc.aio.insecure_channel(address) as channel:
        files = file_pb2_grpc.FileServiceStub(channel)
        state = await files.GetUploadOffset(file_pb2.GetUploadOffsetRequest(token=token))
        assert (state.committed_size, state.total_size, state.complete) == (4 * CHUNK, SIZE, False)
        committed = state.committed_size
        done = await upload(
            files, token, data[committed:], offset=committed, total_size=SIZE, sha256=digest
        )
    assert done.complete and done.sha256 == digest
    target = proxy_process.env["BAI_STORAGE__VOLUMES__LOCAL__PATH"]
    assert file_digest(target) == digest
    assert os.listdir(os.path.join(target, ".bai", "staging")) == []


def file_digest(volume: str) -> str:
    (written,) = Path(volume).glob("user-*/*/big/file.bin")
    return hashlib.sha256(written.read_bytes()).hexdigest()
