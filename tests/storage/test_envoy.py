"""FileService through the real gateway Envoy (rendered config) in front of the proxy."""

from __future__ import annotations

import asyncio
import hashlib
import io
import json
import os
import urllib.parse
import urllib.request
import zipfile
from collections.abc import AsyncIterator

import grpc
import pytest

from bai.api.storage.v1 import file_pb2, file_pb2_grpc
from bai.api.storage.v1 import storage_pb2 as pb
from bai.storage.testing import GatewayProcess
from tests.rpc_errors import reason_of
from tests.storage.conftest import Proxy, folder_path, needs_envoy, new_folder, token_for
from tests.storage.transfer_client import download, upload

pytestmark = needs_envoy


@pytest.fixture(scope="module")
async def via_envoy(gateway: GatewayProcess) -> AsyncIterator[file_pb2_grpc.FileServiceStub]:
    async with grpc.aio.insecure_channel(f"127.0.0.1:{gateway.port}") as channel:
        yield file_pb2_grpc.FileServiceStub(channel)


async def test_upload_download_and_archive_through_envoy(
    proxy: Proxy, via_envoy: file_pb2_grpc.FileServiceStub
) -> None:
    ref = await new_folder(proxy)
    data = os.urandom(5 * 1024 * 1024 + 3)
    token = await token_for(proxy, ref, "d/blob.bin")
    half, digest = len(data) // 2, hashlib.sha256(data).hexdigest()
    first = await upload(via_envoy, token, data[:half], total_size=len(data), sha256=digest)
    assert (first.committed_size, first.complete) == (half, False)
    offset = await via_envoy.GetUploadOffset(file_pb2.GetUploadOffsetRequest(token=token))
    assert offset.committed_size == half
    done = await upload(
        via_envoy,
        token,
        data[half:],
        offset=half,
        total_size=len(data),
        sha256=hashlib.sha256(data).hexdigest(),
    )
    assert done.complete and done.sha256 == hashlib.sha256(data).hexdigest()
    read = await token_for(proxy, ref, "d/blob.bin", pb.TRANSFER_OP_DOWNLOAD)
    got, _ = await download(via_envoy, read)
    assert got == data
    ranged, _ = await download(via_envoy, read, offset=10, length=100)
    assert ranged == data[10:110]
    archive = await token_for(proxy, ref, "d", pb.TRANSFER_OP_ARCHIVE_DOWNLOAD)
    blob, _ = await download(via_envoy, archive)
    with zipfile.ZipFile(io.BytesIO(blob)) as zf:
        assert zf.read("blob.bin") == data


async def test_errors_and_rest_through_envoy(
    proxy: Proxy, gateway: GatewayProcess, via_envoy: file_pb2_grpc.FileServiceStub
) -> None:
    ref = await new_folder(proxy)
    (folder_path(proxy, ref) / "dir").mkdir()
    (folder_path(proxy, ref) / "dir" / "x.txt").write_text("x")
    with pytest.raises(grpc.aio.AioRpcError) as caught:
        await download(via_envoy, "forged.token.value")
    assert caught.value.code() == grpc.StatusCode.UNAUTHENTICATED
    assert reason_of(caught.value) == "TRANSFER_TOKEN_INVALID"
    listing = await token_for(proxy, ref, "dir", pb.TRANSFER_OP_DOWNLOAD)
    query = urllib.parse.urlencode({"page_size": 10})
    request = urllib.request.Request(
        f"http://127.0.0.1:{gateway.port}/v1/files/directory?{query}",
        headers={"authorization": f"Bearer {listing}"},
    )
    # The proxy serves on this event loop: the blocking HTTP call runs in a thread.
    body = json.loads(await asyncio.to_thread(read_url, request))
    assert [e["name"] for e in body["entries"]] == ["x.txt"]


def read_url(request: urllib.request.Request) -> bytes:
    with urllib.request.urlopen(request, timeout=10) as response:
        return bytes(response.read())
