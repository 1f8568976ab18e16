"""Plain-HTTP transfers (/storage/v1/...): through the real gateway Envoy, and a broken
upload straight at the proxy's HTTP port."""

from __future__ import annotations

import asyncio
import hashlib
import io
import os
import zipfile
from collections.abc import AsyncIterator
from typing import Any

import aiohttp
import pytest

from bai.api.storage.v1 import storage_pb2 as pb
from bai.storage.testing import GatewayProcess
from tests.storage.conftest import Proxy, folder_path, needs_envoy, new_folder, token_for

pytestmark = needs_envoy


@pytest.fixture
async def http(gateway: GatewayProcess) -> AsyncIterator[aiohttp.ClientSession]:
    base = f"http://127.0.0.1:{gateway.port}"
    async with aiohttp.ClientSession(base) as session:
        yield session


async def put(
    http: aiohttp.ClientSession, token: str, body: bytes, **headers: str
) -> tuple[int, dict[str, Any]]:
    wire = {k.replace("_", "-"): v for k, v in headers.items()}
    async with http.put(
        "/storage/v1/upload", params={"token": token}, data=body, headers=wire
    ) as r:
        return r.status, await r.json()


async def get(
    http: aiohttp.ClientSession, token: str, **headers: str
) -> tuple[int, bytes, aiohttp.typedefs.LooseHeaders]:
    async with http.get("/storage/v1/download", params={"token": token}, headers=headers) as r:
        return r.status, await r.read(), r.headers


async def test_upload_download_ranges_and_archive(
    proxy: Proxy, http: aiohttp.ClientSession
) -> None:
    ref = await new_folder(proxy)
    data = os.urandom(3 * 1024 * 1024 + 7)
    digest = hashlib.sha256(data).hexdigest()
    up = await token_for(proxy, ref, "d/blob.bin")
    status, reply = await put(http, up, data, x_bai_sha256=digest)
    assert status == 200, reply
    assert reply == {
        "committed_size": len(data),
        "total_size": len(data),
        "complete": True,
        "sha256": digest,
    }
    down = await token_for(proxy, ref, "d/blob.bin", pb.TRANSFER_OP_DOWNLOAD)
    status, body, headers = await get(http, down)
    assert (status, body) == (200, data)
    assert headers["accept-ranges"] == "bytes"
    assert headers["content-disposition"] == (
        "attachment; filename=\"blob.bin\"; filename*=UTF-8''blob.bin"
    )
    status, body, headers = await get(http, down, range="bytes=10-109")
    assert (status, body) == (206, data[10:110])
    assert headers["content-range"] == f"bytes 10-109/{len(data)}"
    status, body, _ = await get(http, down, range="bytes=-5")
    assert (status, body) == (206, data[-5:])
    status, body, headers = await get(http, down, range=f"bytes={len(data)}-")
    assert status == 416 and headers["content-range"] == f"bytes */{len(data)}"
    async with http.head("/storage/v1/download", params={"token": down}) as r:
        assert (r.status, r.headers["content-length"]) == (200, str(len(data)))
    # The token in the Authorization header works as well as in the query.
    async with http.get("/storage/v1/download", headers={"authorization": f"Bearer {down}"}) as r:
        assert (r.status, await r.read()) == (200, data)
    archive = await token_for(proxy, ref, "d", pb.TRANSFER_OP_ARCHIVE_DOWNLOAD)
    status, body, headers = await get(http, archive)
    assert status == 200 and headers["content-type"] == "application/zip"
    with zipfile.ZipFile(io.BytesIO(body)) as zf:
        assert zf.read("blob.bin") == data


async def test_resumable_upload_reports_and_checks_its_offset(
    proxy: Proxy, http: aiohttp.ClientSession
) -> None:
    ref = await new_folder(proxy)
    data = os.urandom(2 * 1024 * 1024 + 11)
    half, digest = len(data) // 2, hashlib.sha256(data).hexdigest()
    up = await token_for(proxy, ref, "big.bin")
    status, reply = await put(
        http, up, data[:half], upload_length=str(len(data)), x_bai_sha256=digest
    )
    assert status == 200 and (reply["committed_size"], reply["complete"]) == (half, False)
    assert not (folder_path(proxy, ref) / "big.bin").exists()  # never visible half-done
    async with http.head("/storage/v1/upload", params={"token": up}) as r:
        assert r.headers["upload-offset"] == str(half)
        assert r.headers["upload-length"] == str(len(data))
        assert r.headers["x-bai-upload-complete"] == "false"
    status, reply = await put(
        http,
        up,
        data[half:],
        upload_offset=str(half + 1),
        upload_length=str(len(data)),
        x_bai_sha256=digest,
    )
    assert status == 400
    assert reply["reason"] == "UPLOAD_OFFSET_MISMATCH"
    assert reply["metadata"] == {"committed_size": str(half)}
    status, reply = await put(
        http,
        up,
        data[half:],
        upload_offset=str(half),
        upload_length=str(len(data)),
        x_bai_sha256=digest,
    )
    assert status == 200 and reply["complete"] and reply["sha256"] == digest
    assert (folder_path(proxy, ref) / "big.bin").read_bytes() == data


async def test_refusals_have_codes_and_reasons(proxy: Proxy, http: aiohttp.ClientSession) -> None:
    ref = await new_folder(proxy)
    up = await token_for(proxy, ref, "f.bin")
    status, reply = await put(http, up, b"abc", x_bai_sha256="0" * 64)
    assert (status, reply["code"], reply["reason"]) == (500, "DATA_LOSS", "CHECKSUM_MISMATCH")
    assert not (folder_path(proxy, ref) / "f.bin").exists()
    status, reply = await put(http, up, b"abc", x_bai_sha256="not-hex")
    assert (status, reply["code"]) == (400, "INVALID_ARGUMENT")
    assert reply["violations"][0]["field"] == "sha256"
    status, reply = await put(http, up, b"abc", upload_offset="-1")
    assert (status, reply["violations"][0]["field"]) == (400, "upload-offset")
    status, body, _ = await get(http, up)
    assert status == 403 and b"TRANSFER_SCOPE_VIOLATION" in body
    # A HEAD reply has no body: the code and reason come as headers.
    down_only = await token_for(proxy, ref, "", pb.TRANSFER_OP_ARCHIVE_DOWNLOAD)
    async with http.head("/storage/v1/upload", params={"token": down_only}) as r:
        assert r.status == 403
        assert r.headers["x-bai-error-code"] == "PERMISSION_DENIED"
        assert r.headers["x-bai-error-reason"] == "TRANSFER_SCOPE_VIOLATION"
    status, body, _ = await get(http, "forged.token.value")
    assert status == 401 and b"TRANSFER_TOKEN_INVALID" in body
    (folder_path(proxy, ref) / "x.txt").write_text("x")
    down = await token_for(proxy, ref, "x.txt", pb.TRANSFER_OP_DOWNLOAD)
    async with http.get("/storage/v1/download", params={"token": down, "path": "../x.txt"}) as r:
        assert r.status == 403 and (await r.json())["reason"] == "TRANSFER_SCOPE_VIOLATION"
    # A token for a bigger file than it allows, and a write over the quota.
    small = await token_for(proxy, ref, "g.bin", max_size=2)
    status, reply = await put(http, small, b"abc")
    assert (status, reply["reason"]) == (403, "TRANSFER_SCOPE_VIOLATION")
    limited = await new_folder(proxy, limit=1000)
    over = await token_for(proxy, limited, "h.bin")
    status, reply = await put(http, over, b"x" * 2000)
    assert (status, reply["code"]) == (429, "RESOURCE_EXHAUSTED")
    assert not (folder_path(proxy, limited) / "h.bin").exists()


async def test_a_broken_upload_keeps_what_arrived_for_the_resume(proxy: Proxy) -> None:
    ref = await new_folder(proxy)
    up = await token_for(proxy, ref, "cut.bin")
    data = os.urandom(3 * 1024 * 1024)
    sent = len(data) // 2 + 5
    _, writer = await asyncio.open_connection("127.0.0.1", proxy.running.http_port)
    head = (
        f"PUT /storage/v1/upload?token={up} HTTP/1.1\r\nhost: x\r\n"
        f"content-length: {len(data)}\r\n\r\n"
    )
    writer.write(head.encode() + data[:sent])
    await writer.drain()
    writer.close()  # mid-body: the client is gone
    await writer.wait_closed()
    url = f"http://127.0.0.1:{proxy.running.http_port}/storage/v1/upload"
    async with aiohttp.ClientSession() as direct:
        for _ in range(100):  # the proxy notices the cut a moment later
            async with direct.head(url, params={"token": up}) as r:
                if r.headers["upload-offset"] == str(sent):
                    break
            await asyncio.sleep(0.05)
        assert r.headers["upload-offset"] == str(sent)
        assert r.headers["upload-length"] == str(len(data))
        async with direct.put(
            url,
            params={"token": up},
            data=data[sent:],
            headers={"upload-offset": str(sent), "upload-length": str(len(data))},
        ) as r:
            assert (await r.json())["complete"]
    assert (folder_path(proxy, ref) / "cut.bin").read_bytes() == data
