"""StorageService over real gRPC against a temp-dir volume."""

from __future__ import annotations

import uuid

import grpc
import pytest
from google.protobuf.duration_pb2 import Duration

from bai.api.common.v1 import storage_pb2 as common
from bai.api.storage.v1 import storage_pb2 as pb
from tests.rpc_errors import reason_of, violated_fields
from tests.storage.conftest import (
    AUTH,
    VOLUME,
    Proxy,
    folder_path,
    folder_ref,
    new_folder,
    user_scope,
)


async def test_manager_secret_is_required(proxy: Proxy) -> None:
    with pytest.raises(grpc.aio.AioRpcError) as caught:
        await proxy.storage.ListVolumes(pb.ListVolumesRequest())
    assert caught.value.code() == grpc.StatusCode.UNAUTHENTICATED
    assert reason_of(caught.value) == "CREDENTIALS_MISSING"
    with pytest.raises(grpc.aio.AioRpcError) as caught:
        await proxy.storage.ListVolumes(
            pb.ListVolumesRequest(), metadata=(("x-bai-storage-auth-token", "wrong"),)
        )
    assert reason_of(caught.value) == "TOKEN_INVALID"


async def test_storage_service_is_not_served_on_the_client_port(proxy: Proxy) -> None:
    from bai.api.storage.v1 import storage_pb2_grpc

    stub = storage_pb2_grpc.StorageServiceStub(proxy.file_channel)
    with pytest.raises(grpc.aio.AioRpcError) as caught:
        await stub.ListVolumes(pb.ListVolumesRequest(), metadata=AUTH)
    assert caught.value.code() == grpc.StatusCode.UNIMPLEMENTED


async def test_volumes(proxy: Proxy) -> None:
    listed = await proxy.storage.ListVolumes(pb.ListVolumesRequest(), metadata=AUTH)
    assert [(v.name, v.backend) for v in listed.volumes] == [(VOLUME, "vfs")]
    assert pb.VOLUME_CAPABILITY_QUOTA in listed.volumes[0].capabilities
    got = await proxy.storage.GetVolume(pb.GetVolumeRequest(volume=VOLUME), metadata=AUTH)
    assert got.hardware.status == pb.VOLUME_STATUS_HEALTHY
    with pytest.raises(grpc.aio.AioRpcError) as caught:
        await proxy.storage.GetVolume(
            pb.GetVolumeRequest(volume=VOLUME, include_metric=True), metadata=AUTH
        )
    assert reason_of(caught.value) == "VOLUME_CAPABILITY_MISSING"
    with pytest.raises(grpc.aio.AioRpcError) as caught:
        await proxy.storage.GetVolume(pb.GetVolumeRequest(volume="nope"), metadata=AUTH)
    assert caught.value.code() == grpc.StatusCode.NOT_FOUND
    fs = await proxy.storage.GetFsUsage(pb.GetFsUsageRequest(volume=VOLUME), metadata=AUTH)
    assert fs.capacity_bytes >= fs.used_bytes > 0


async def test_quota_scope_lifecycle(proxy: Proxy) -> None:
    scope = user_scope()
    key = dict(volume=VOLUME, quota_scope=scope)
    with pytest.raises(grpc.aio.AioRpcError) as caught:
        await proxy.storage.GetQuotaScope(pb.GetQuotaScopeRequest(**key), metadata=AUTH)
    assert caught.value.code() == grpc.StatusCode.NOT_FOUND
    for _ in range(2):  # idempotent
        made = await proxy.storage.CreateQuotaScope(
            pb.CreateQuotaScopeRequest(**key, limit_bytes=1000), metadata=AUTH
        )
        assert (made.usage.limit_bytes, made.usage.used_bytes) == (1000, 0)
    updated = await proxy.storage.UpdateQuotaScope(
        pb.UpdateQuotaScopeRequest(**key, limit_bytes=0), metadata=AUTH
    )
    assert updated.usage.limit_bytes == 0
    ref = pb.VFolderRef(volume=VOLUME, quota_scope=scope, folder_id=str(uuid.uuid4()))
    await proxy.storage.CreateVFolder(pb.CreateVFolderRequest(vfolder=ref), metadata=AUTH)
    folder_path(proxy, ref).joinpath("f.bin").write_bytes(b"x" * 123)
    got = await proxy.storage.GetQuotaScope(pb.GetQuotaScopeRequest(**key), metadata=AUTH)
    assert got.usage.used_bytes == 123
    with pytest.raises(grpc.aio.AioRpcError) as caught:
        await proxy.storage.DeleteQuotaScope(pb.DeleteQuotaScopeRequest(**key), metadata=AUTH)
    assert reason_of(caught.value) == "IN_USE"
    await proxy.storage.DeleteVFolder(pb.DeleteVFolderRequest(vfolder=ref), metadata=AUTH)
    for _ in range(2):  # idempotent
        await proxy.storage.DeleteQuotaScope(pb.DeleteQuotaScopeRequest(**key), metadata=AUTH)
    bad = common.QuotaScope(type=common.QUOTA_SCOPE_TYPE_USER, id="not-a-uuid")
    with pytest.raises(grpc.aio.AioRpcError) as caught:
        await proxy.storage.GetQuotaScope(
            pb.GetQuotaScopeRequest(volume=VOLUME, quota_scope=bad), metadata=AUTH
        )
    assert violated_fields(caught.value) == ["quota_scope.id"]


async def test_folder_create_usage_metadata_mount_delete(proxy: Proxy) -> None:
    ref = await new_folder(proxy)
    await proxy.storage.CreateVFolder(pb.CreateVFolderRequest(vfolder=ref), metadata=AUTH)
    path = folder_path(proxy, ref)
    (path / "a").mkdir()
    (path / "a" / "one").write_bytes(b"1" * 10)
    (path / "two").write_bytes(b"2" * 5)
    usage = await proxy.storage.GetVFolderUsage(
        pb.GetVFolderUsageRequest(vfolder=ref), metadata=AUTH
    )
    assert (usage.file_count, usage.used_bytes) == (2, 15)
    used = await proxy.storage.GetVFolderUsedBytes(
        pb.GetVFolderUsedBytesRequest(vfolder=ref), metadata=AUTH
    )
    assert used.used_bytes == 15
    mount = await proxy.storage.GetVFolderMount(
        pb.GetVFolderMountRequest(vfolder=ref, subpath="a"), metadata=AUTH
    )
    assert mount.path == str(path / "a")
    meta = await proxy.storage.GetVFolderMetadata(
        pb.GetVFolderMetadataRequest(vfolder=ref), metadata=AUTH
    )
    assert meta.metadata == b""
    await proxy.storage.SetVFolderMetadata(
        pb.SetVFolderMetadataRequest(vfolder=ref, metadata=b"\x00blob"), metadata=AUTH
    )
    meta = await proxy.storage.GetVFolderMetadata(
        pb.GetVFolderMetadataRequest(vfolder=ref), metadata=AUTH
    )
    assert meta.metadata == b"\x00blob"
    with pytest.raises(grpc.aio.AioRpcError) as caught:
        await proxy.storage.SetVFolderMetadata(
            pb.SetVFolderMetadataRequest(vfolder=ref, metadata=b"x" * ((1 << 20) + 1)),
            metadata=AUTH,
        )
    assert caught.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    for _ in range(2):  # idempotent
        await proxy.storage.DeleteVFolder(pb.DeleteVFolderRequest(vfolder=ref), metadata=AUTH)
    assert not path.exists()
    with pytest.raises(grpc.aio.AioRpcError) as caught:
        await proxy.storage.GetVFolderUsage(pb.GetVFolderUsageRequest(vfolder=ref), metadata=AUTH)
    assert caught.value.code() == grpc.StatusCode.NOT_FOUND


async def test_create_folder_in_a_full_scope_is_refused(proxy: Proxy) -> None:
    ref = await new_folder(proxy, limit=10)
    folder_path(proxy, ref).joinpath("big").write_bytes(b"x" * 10)
    other = folder_ref(ref.quota_scope)
    with pytest.raises(grpc.aio.AioRpcError) as caught:
        await proxy.storage.CreateVFolder(pb.CreateVFolderRequest(vfolder=other), metadata=AUTH)
    assert caught.value.code() == grpc.StatusCode.RESOURCE_EXHAUSTED
    assert reason_of(caught.value) == "STORAGE_QUOTA_EXCEEDED"
    assert not folder_path(proxy, other).exists()


async def test_clone_copies_and_respects_quota(proxy: Proxy) -> None:
    src = await new_folder(proxy)
    path = folder_path(proxy, src)
    (path / "d").mkdir()
    (path / "d" / "f").write_bytes(b"abc" * 100)
    (path / "link").symlink_to("/etc/passwd")
    target = folder_ref()
    done = await proxy.storage.CloneVFolder(
        pb.CloneVFolderRequest(source=src, target=target), metadata=AUTH
    )
    assert (done.copied_bytes, done.copied_files) == (300, 1)
    copy = folder_path(proxy, target)
    assert (copy / "d" / "f").read_bytes() == b"abc" * 100
    assert (copy / "link").is_symlink()
    with pytest.raises(grpc.aio.AioRpcError) as caught:
        await proxy.storage.CloneVFolder(
            pb.CloneVFolderRequest(source=src, target=target), metadata=AUTH
        )
    assert caught.value.code() == grpc.StatusCode.ALREADY_EXISTS
    small = folder_ref()
    await proxy.storage.CreateQuotaScope(
        pb.CreateQuotaScopeRequest(volume=VOLUME, quota_scope=small.quota_scope, limit_bytes=100),
        metadata=AUTH,
    )
    with pytest.raises(grpc.aio.AioRpcError) as caught:
        await proxy.storage.CloneVFolder(
            pb.CloneVFolderRequest(source=src, target=small), metadata=AUTH
        )
    assert reason_of(caught.value) == "STORAGE_QUOTA_EXCEEDED"
    assert not folder_path(proxy, small).exists()
    assert list(folder_path(proxy, small).parent.iterdir()) == []


async def test_file_operations(proxy: Proxy) -> None:
    ref = await new_folder(proxy)
    path = folder_path(proxy, ref)

    async def call(method: str, **fields: object) -> object:
        request_type = getattr(pb, f"{method}Request")
        return await getattr(proxy.storage, method)(
            request_type(vfolder=ref, **fields), metadata=AUTH
        )

    await call("Mkdir", relpaths=["x/y/z", "w"], parents=True)
    assert (path / "x" / "y" / "z").is_dir() and (path / "w").is_dir()
    await call("Mkdir", relpaths=["w"], exist_ok=True)
    with pytest.raises(grpc.aio.AioRpcError) as caught:
        await call("Mkdir", relpaths=["w"])
    assert caught.value.code() == grpc.StatusCode.ALREADY_EXISTS
    with pytest.raises(grpc.aio.AioRpcError) as caught:
        await call("Mkdir", relpaths=["q/r"])
    assert caught.value.code() == grpc.StatusCode.NOT_FOUND
    (path / "file.txt").write_text("hello")
    with pytest.raises(grpc.aio.AioRpcError) as caught:
        await call("Mkdir", relpaths=["file.txt/sub"], parents=True)
    assert reason_of(caught.value) == "PATH_TYPE_MISMATCH"

    for i in range(5):
        (path / "w" / f"f{i}").write_bytes(b"x" * i)
    names, token = [], ""
    while True:
        page = await call("ListFiles", relpath="w", page_size=2, page_token=token)
        names += [(e.name, e.path, e.size, e.type) for e in page.entries]  # type: ignore[attr-defined]
        token = page.next_page_token  # type: ignore[attr-defined]
        if not token:
            break
    assert names == [(f"f{i}", f"w/f{i}", i, common.FILE_TYPE_FILE) for i in range(5)]
    with pytest.raises(grpc.aio.AioRpcError) as caught:
        await call("ListFiles", relpath="x", page_token=token or "bm90LWEtdG9rZW4=")
    assert reason_of(caught.value) == "INVALID_PAGE_TOKEN"
    with pytest.raises(grpc.aio.AioRpcError) as caught:
        await call("ListFiles", relpath="file.txt")
    assert reason_of(caught.value) == "PATH_TYPE_MISMATCH"

    await call("RenameFile", relpath="file.txt", new_name="renamed.txt")
    assert (path / "renamed.txt").read_text() == "hello"
    with pytest.raises(grpc.aio.AioRpcError) as caught:
        await call("RenameFile", relpath="file.txt", new_name="again.txt")
    assert caught.value.code() == grpc.StatusCode.NOT_FOUND
    with pytest.raises(grpc.aio.AioRpcError) as caught:
        await call("RenameFile", relpath="renamed.txt", new_name="w")
    assert caught.value.code() == grpc.StatusCode.ALREADY_EXISTS
    with pytest.raises(grpc.aio.AioRpcError) as caught:
        await call("RenameFile", relpath="renamed.txt", new_name="../out")
    assert caught.value.code() == grpc.StatusCode.INVALID_ARGUMENT

    await call("MoveFile", source_relpath="renamed.txt", target_relpath="x/y/moved.txt")
    assert (path / "x" / "y" / "moved.txt").read_text() == "hello"
    (path / "other.txt").write_text("other")
    with pytest.raises(grpc.aio.AioRpcError) as caught:
        await call("MoveFile", source_relpath="other.txt", target_relpath="x/y/moved.txt")
    assert caught.value.code() == grpc.StatusCode.ALREADY_EXISTS
    await call(
        "MoveFile", source_relpath="other.txt", target_relpath="x/y/moved.txt", overwrite=True
    )
    assert (path / "x" / "y" / "moved.txt").read_text() == "other"
    with pytest.raises(grpc.aio.AioRpcError) as caught:
        await call("MoveFile", source_relpath="x/y/moved.txt", target_relpath="w", overwrite=True)
    assert reason_of(caught.value) == "PATH_TYPE_MISMATCH"

    with pytest.raises(grpc.aio.AioRpcError) as caught:
        await call("DeleteFiles", relpaths=["x"])
    assert reason_of(caught.value) == "PATH_TYPE_MISMATCH"
    await call("DeleteFiles", relpaths=["x", "missing"], recursive=True)
    assert not (path / "x").exists()
    with pytest.raises(grpc.aio.AioRpcError) as caught:
        await call("DeleteFiles", relpaths=[""], recursive=True)
    assert caught.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    await call("DeleteFilesAsync", relpaths=["w"], recursive=True)
    await proxy.running.ctx.drain()
    assert not (path / "w").exists() and path.is_dir()


async def test_issue_transfer_token_checks(proxy: Proxy) -> None:
    ref = await new_folder(proxy)
    (folder_path(proxy, ref) / "f").write_text("x")
    issued = await proxy.storage.IssueTransferToken(
        pb.IssueTransferTokenRequest(
            op=pb.TRANSFER_OP_DOWNLOAD, vfolder=ref, relpath="f", ttl=Duration(seconds=60)
        ),
        metadata=AUTH,
    )
    assert issued.token and issued.client_address
    assert 55 <= issued.expires_at.seconds - __import__("time").time() <= 61
    cases = [
        (dict(op=pb.TRANSFER_OP_DOWNLOAD, relpath="missing"), grpc.StatusCode.NOT_FOUND),
        (
            dict(op=pb.TRANSFER_OP_ARCHIVE_DOWNLOAD, relpath="f"),
            grpc.StatusCode.FAILED_PRECONDITION,
        ),
        (dict(op=pb.TRANSFER_OP_UNSPECIFIED, relpath="f"), grpc.StatusCode.INVALID_ARGUMENT),
        (dict(op=pb.TRANSFER_OP_UPLOAD, relpath="../f"), grpc.StatusCode.INVALID_ARGUMENT),
        (
            dict(op=pb.TRANSFER_OP_UPLOAD, relpath="f", ttl=Duration(seconds=24 * 3600 + 1)),
            grpc.StatusCode.INVALID_ARGUMENT,
        ),
    ]
    for fields, code in cases:
        with pytest.raises(grpc.aio.AioRpcError) as caught:
            await proxy.storage.IssueTransferToken(
                pb.IssueTransferTokenRequest(vfolder=ref, **fields),  # type: ignore[arg-type]
                metadata=AUTH,
            )
        assert caught.value.code() == code, fields
    with pytest.raises(grpc.aio.AioRpcError) as caught:
        await proxy.storage.IssueTransferToken(
            pb.IssueTransferTokenRequest(op=pb.TRANSFER_OP_UPLOAD, vfolder=folder_ref()),
            metadata=AUTH,
        )
    assert caught.value.code() == grpc.StatusCode.NOT_FOUND
