"""FileService over real gRPC: uploads (resumable, checksummed, atomic), downloads, archives."""

from __future__ import annotations

import asyncio
import hashlib
import io
import os
import zipfile
from collections.abc import AsyncIterator

import grpc
import pytest

from bai.api.storage.v1 import file_pb2
from bai.api.storage.v1 import storage_pb2 as pb
from tests.rpc_errors import reason_of
from tests.storage.conftest import AUTH, Proxy, folder_path, new_folder, token_for
from tests.storage.transfer_client import committed_at_least, download, upload


def staging_files(proxy: Proxy) -> list[str]:
    return sorted(os.listdir(proxy.root / ".bai" / "staging"))


async def test_upload_then_download_round_trip(proxy: Proxy) -> None:
    ref = await new_folder(proxy)
    data = os.urandom(3 * 1024 * 1024 + 17)
    token = await token_for(proxy, ref, "dir/sub/blob.bin")
    reply = await upload(proxy.files, token, data)
    assert reply.complete and reply.committed_size == len(data)
    assert reply.sha256 == hashlib.sha256(data).hexdigest()
    assert (folder_path(proxy, ref) / "dir" / "sub" / "blob.bin").read_bytes() == data
    assert (
        oct(os.stat(folder_path(proxy, ref) / "dir" / "sub" / "blob.bin").st_mode & 0o777)
        == "0o644"
    )
    read = await token_for(proxy, ref, "dir/sub/blob.bin", pb.TRANSFER_OP_DOWNLOAD)
    got, replies = await download(proxy.files, read)
    assert got == data
    assert replies[0].total_size == len(data)
    assert all(len(r.chunk) <= 1 << 20 for r in replies)
    part, replies = await download(proxy.files, read, offset=1000, length=2_000_000)
    assert part == data[1000:2_001_000] and replies[0].offset == 1000
    with pytest.raises(grpc.aio.AioRpcError) as caught:
        await download(proxy.files, read, offset=len(data) - 1, length=2)
    assert caught.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    empty_token = await token_for(proxy, ref, "empty")
    assert (await upload(proxy.files, empty_token, b"")).complete
    assert (folder_path(proxy, ref) / "empty").read_bytes() == b""


async def test_token_in_metadata(proxy: Proxy) -> None:
    ref = await new_folder(proxy)
    token = await token_for(proxy, ref, "m.txt")
    header = file_pb2.UploadHeader(total_size=3)

    async def messages() -> AsyncIterator[file_pb2.UploadRequest]:
        yield file_pb2.UploadRequest(header=header)
        yield file_pb2.UploadRequest(chunk=b"abc")

    done = await proxy.files.Upload(messages(), metadata=(("authorization", f"Bearer {token}"),))
    assert done.complete
    assert (folder_path(proxy, ref) / "m.txt").read_bytes() == b"abc"


async def test_broken_upload_resumes_and_is_invisible_until_complete(proxy: Proxy) -> None:
    ref = await new_folder(proxy)
    data = os.urandom(1_000_000)
    digest = hashlib.sha256(data).hexdigest()
    token = await token_for(proxy, ref, "resumed.bin")
    first = await upload(proxy.files, token, data[:400_000], total_size=len(data), sha256=digest)
    assert (first.committed_size, first.complete) == (400_000, False)
    assert not (folder_path(proxy, ref) / "resumed.bin").exists()
    offset = await proxy.files.GetUploadOffset(file_pb2.GetUploadOffsetRequest(token=token))
    assert (offset.committed_size, offset.total_size, offset.complete) == (
        400_000,
        len(data),
        False,
    )
    with pytest.raises(grpc.aio.AioRpcError) as caught:  # resending committed bytes
        await upload(
            proxy.files, token, data[300_000:], offset=300_000, total_size=len(data), sha256=digest
        )
    assert reason_of(caught.value) == "UPLOAD_OFFSET_MISMATCH"
    fresh = await token_for(proxy, ref, "resumed.bin")  # a new token for the same path works
    done = await upload(
        proxy.files, fresh, data[400_000:], offset=400_000, total_size=len(data), sha256=digest
    )
    assert done.complete and done.sha256 == digest
    assert (folder_path(proxy, ref) / "resumed.bin").read_bytes() == data
    offset = await proxy.files.GetUploadOffset(file_pb2.GetUploadOffsetRequest(token=token))
    assert (offset.committed_size, offset.complete) == (0, True)


async def test_checksum_mismatch_discards_the_upload(proxy: Proxy) -> None:
    ref = await new_folder(proxy)
    token = await token_for(proxy, ref, "bad.bin")
    before = staging_files(proxy)
    with pytest.raises(grpc.aio.AioRpcError) as caught:
        await upload(proxy.files, token, b"hello", sha256=hashlib.sha256(b"other").hexdigest())
    assert caught.value.code() == grpc.StatusCode.DATA_LOSS
    assert reason_of(caught.value) == "CHECKSUM_MISMATCH"
    assert not (folder_path(proxy, ref) / "bad.bin").exists()
    assert staging_files(proxy) == before


async def test_upload_over_quota_is_refused_and_leaves_nothing(proxy: Proxy) -> None:
    ref = await new_folder(proxy, limit=1000)
    token = await token_for(proxy, ref, "ok.bin")
    assert (await upload(proxy.files, token, b"x" * 600)).complete
    before = staging_files(proxy)
    big = await token_for(proxy, ref, "big.bin")
    with pytest.raises(grpc.aio.AioRpcError) as caught:
        await upload(proxy.files, big, b"y" * 401)
    assert caught.value.code() == grpc.StatusCode.RESOURCE_EXHAUSTED
    assert reason_of(caught.value) == "STORAGE_QUOTA_EXCEEDED"
    assert sorted(os.listdir(folder_path(proxy, ref))) == ["ok.bin"]
    assert staging_files(proxy) == before
    # Replacing a file counts only the growth; unfinished uploads hold their declared size.
    assert (await upload(proxy.files, token, b"z" * 1000)).complete
    usage = await proxy.storage.GetQuotaScope(
        pb.GetQuotaScopeRequest(volume=ref.volume, quota_scope=ref.quota_scope), metadata=AUTH
    )
    assert (usage.usage.used_bytes, usage.usage.limit_bytes) == (1000, 1000)


async def test_racing_uploads_never_overfill_a_quota_scope(proxy: Proxy) -> None:
    ref = await new_folder(proxy, limit=1000)
    tokens = [await token_for(proxy, ref, f"race-{i}.bin") for i in range(8)]
    results = await asyncio.gather(
        *(upload(proxy.files, token, b"r" * 600) for token in tokens), return_exceptions=True
    )
    done = [r for r in results if not isinstance(r, BaseException)]
    refused = [r for r in results if isinstance(r, grpc.aio.AioRpcError)]
    assert len(done) == 1 and len(refused) == 7, results
    assert {reason_of(r) for r in refused} == {"STORAGE_QUOTA_EXCEEDED"}
    assert sum(f.stat().st_size for f in folder_path(proxy, ref).iterdir()) == 600


async def test_max_size_and_stream_order(proxy: Proxy) -> None:
    ref = await new_folder(proxy)
    token = await token_for(proxy, ref, "capped.bin", max_size=10)
    with pytest.raises(grpc.aio.AioRpcError) as caught:
        await upload(proxy.files, token, b"x" * 11)
    assert reason_of(caught.value) == "TRANSFER_SCOPE_VIOLATION"

    async def chunk_first() -> AsyncIterator[file_pb2.UploadRequest]:
        yield file_pb2.UploadRequest(chunk=b"x")

    with pytest.raises(grpc.aio.AioRpcError) as caught:
        await proxy.files.Upload(chunk_first())
    assert reason_of(caught.value) == "STREAM_OUT_OF_ORDER"
    with pytest.raises(grpc.aio.AioRpcError) as caught:
        await upload(proxy.files, token, b"x" * 5, total_size=3)
    assert caught.value.code() == grpc.StatusCode.INVALID_ARGUMENT


async def test_concurrent_upload_of_one_file_is_refused(proxy: Proxy) -> None:
    ref = await new_folder(proxy)
    token = await token_for(proxy, ref, "same.bin")
    release = asyncio.Event()

    async def slow() -> AsyncIterator[file_pb2.UploadRequest]:
        yield file_pb2.UploadRequest(header=file_pb2.UploadHeader(token=token, total_size=4))
        yield file_pb2.UploadRequest(chunk=b"ab")
        await release.wait()
        yield file_pb2.UploadRequest(chunk=b"cd")

    first = asyncio.ensure_future(proxy.files.Upload(slow()))
    await committed_at_least(proxy.files, token, 2)
    with pytest.raises(grpc.aio.AioRpcError) as caught:
        await upload(proxy.files, token, b"abcd")
    assert caught.value.code() == grpc.StatusCode.ABORTED
    assert reason_of(caught.value) == "CONCURRENT_UPDATE"
    release.set()
    assert (await first).complete
    assert (folder_path(proxy, ref) / "same.bin").read_bytes() == b"abcd"


async def test_directory_archive_and_listing(proxy: Proxy) -> None:
    ref = await new_folder(proxy)
    root = folder_path(proxy, ref)
    (root / "d" / "sub").mkdir(parents=True)
    (root / "d" / "empty").mkdir()
    (root / "d" / "a.txt").write_text("alpha")
    (root / "d" / "sub" / "b.bin").write_bytes(os.urandom(2_500_000))
    token = await token_for(proxy, ref, "d", pb.TRANSFER_OP_ARCHIVE_DOWNLOAD)
    blob, replies = await download(proxy.files, token)
    assert replies[0].total_size == 0
    with zipfile.ZipFile(io.BytesIO(blob)) as zf:
        assert sorted(zf.namelist()) == ["a.txt", "empty/", "sub/b.bin"]
        assert zf.read("sub/b.bin") == (root / "d" / "sub" / "b.bin").read_bytes()
    with pytest.raises(grpc.aio.AioRpcError) as caught:
        await download(proxy.files, token, offset=1)
    assert caught.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    listed = await proxy.files.ListDirectory(file_pb2.ListDirectoryRequest(token=token))
    assert [(e.name, e.path) for e in listed.entries] == [
        ("a.txt", "a.txt"),
        ("empty", "empty"),
        ("sub", "sub"),
    ]
    inner = await proxy.files.ListDirectory(file_pb2.ListDirectoryRequest(token=token, path="sub"))
    assert [e.path for e in inner.entries] == ["sub/b.bin"]
    file_token = await token_for(proxy, ref, "d", pb.TRANSFER_OP_DOWNLOAD)
    got, _ = await download(proxy.files, file_token, path="a.txt")
    assert got == b"alpha"
    with pytest.raises(grpc.aio.AioRpcError) as caught:
        await download(proxy.files, file_token)
    assert reason_of(caught.value) == "PATH_TYPE_MISMATCH"
    with pytest.raises(grpc.aio.AioRpcError) as caught:
        await download(proxy.files, file_token, path="nope")
    assert caught.value.code() == grpc.StatusCode.NOT_FOUND
