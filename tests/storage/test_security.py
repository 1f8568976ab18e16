"""Each way out of a folder, refused: traversal, symlinks, foreign or bad tokens."""

from __future__ import annotations

import io
import os
import time
import zipfile

import grpc
import jwt
import pytest

from bai.api.storage.v1 import file_pb2
from bai.api.storage.v1 import storage_pb2 as pb
from bai.storage import tokens
from bai.storage.quota import QuotaScopeId, VFolderId, parse_uuid
from tests.rpc_errors import reason_of
from tests.storage.conftest import AUTH, JWT_SECRET, Proxy, folder_path, new_folder, token_for
from tests.storage.transfer_client import download, upload

TRAVERSALS = ["../x", "a/../../x", "/etc/passwd", "a\x00b", "a\\..\\b", "n" * 300, "a/" * 2100]


@pytest.mark.parametrize("relpath", TRAVERSALS)
async def test_manager_paths_that_leave_the_folder_are_refused(proxy: Proxy, relpath: str) -> None:
    ref = await new_folder(proxy)
    requests = [
        ("Mkdir", pb.MkdirRequest(vfolder=ref, relpaths=[relpath], parents=True)),
        ("ListFiles", pb.ListFilesRequest(vfolder=ref, relpath=relpath)),
        ("DeleteFiles", pb.DeleteFilesRequest(vfolder=ref, relpaths=[relpath], recursive=True)),
        ("MoveFile", pb.MoveFileRequest(vfolder=ref, source_relpath="a", target_relpath=relpath)),
        ("RenameFile", pb.RenameFileRequest(vfolder=ref, relpath=relpath, new_name="b")),
        ("GetVFolderMount", pb.GetVFolderMountRequest(vfolder=ref, subpath=relpath)),
        (
            "IssueTransferToken",
            pb.IssueTransferTokenRequest(op=pb.TRANSFER_OP_UPLOAD, vfolder=ref, relpath=relpath),
        ),
    ]
    for method, request in requests:
        with pytest.raises(grpc.aio.AioRpcError) as caught:
            await getattr(proxy.storage, method)(request, metadata=AUTH)
        assert caught.value.code() == grpc.StatusCode.INVALID_ARGUMENT, method
        assert reason_of(caught.value) == "INVALID_FIELD"


@pytest.mark.parametrize("path", ["../x", "../../etc/passwd", "/etc/passwd", "a/../../x"])
async def test_client_paths_that_leave_the_token_path_are_refused(proxy: Proxy, path: str) -> None:
    ref = await new_folder(proxy)
    (folder_path(proxy, ref) / "d").mkdir()
    up = await token_for(proxy, ref, "d")
    down = await token_for(proxy, ref, "d", pb.TRANSFER_OP_DOWNLOAD)
    calls = [
        upload(proxy.files, up, b"x", path=path),
        download(proxy.files, down, path=path),
        proxy.files.ListDirectory(file_pb2.ListDirectoryRequest(token=down, path=path)),
        proxy.files.GetUploadOffset(file_pb2.GetUploadOffsetRequest(token=up, path=path)),
    ]
    for call in calls:
        with pytest.raises(grpc.aio.AioRpcError) as caught:
            await call
        assert caught.value.code() == grpc.StatusCode.PERMISSION_DENIED
        assert reason_of(caught.value) == "TRANSFER_SCOPE_VIOLATION"


async def test_symlinks_pointing_out_are_never_followed(
    proxy: Proxy, tmp_path: os.PathLike[str]
) -> None:
    """As a session would: links inside the folder to outside files and directories."""
    ref = await new_folder(proxy)
    other = await new_folder(proxy)
    root, victim = folder_path(proxy, ref), folder_path(proxy, other)
    (victim / "secret.txt").write_text("other user's data")
    outside = os.path.join(tmp_path, "outside")
    os.mkdir(outside)
    (root / "file-link").symlink_to(victim / "secret.txt")
    (root / "dir-link").symlink_to(victim)
    (root / "out-link").symlink_to(outside)
    (root / "real").mkdir()
    (root / "real" / "ok.txt").write_text("mine")
    (root / "real" / "inner-link").symlink_to("/etc/passwd")

    for relpath, field in (
        ("file-link", ""),
        ("dir-link", "secret.txt"),
        ("dir-link/secret.txt", ""),
    ):
        token = await token_for(proxy, ref, "", pb.TRANSFER_OP_DOWNLOAD)
        path = f"{relpath}/{field}".strip("/")
        with pytest.raises(grpc.aio.AioRpcError) as caught:
            await download(proxy.files, token, path=path)
        assert reason_of(caught.value) == "PATH_TYPE_MISMATCH", path

    # Uploads through a linked directory, or onto a link, never write outside.
    up = await token_for(proxy, ref, "out-link/planted.txt")
    with pytest.raises(grpc.aio.AioRpcError) as caught:
        await upload(proxy.files, up, b"planted")
    assert reason_of(caught.value) == "PATH_TYPE_MISMATCH"
    assert os.listdir(outside) == []
    onto = await token_for(proxy, ref, "file-link")
    assert (await upload(proxy.files, onto, b"replaces the link")).complete
    assert (victim / "secret.txt").read_text() == "other user's data"
    assert not (root / "file-link").is_symlink()

    # Manager-side operations do not walk through links either.
    for request, method in (
        (pb.MkdirRequest(vfolder=ref, relpaths=["out-link/new"], parents=True), "Mkdir"),
        (pb.ListFilesRequest(vfolder=ref, relpath="dir-link"), "ListFiles"),
        (
            pb.MoveFileRequest(
                vfolder=ref, source_relpath="real/ok.txt", target_relpath="out-link/ok.txt"
            ),
            "MoveFile",
        ),
    ):
        with pytest.raises(grpc.aio.AioRpcError) as caught:
            await getattr(proxy.storage, method)(request, metadata=AUTH)
        assert reason_of(caught.value) == "PATH_TYPE_MISMATCH", method
    assert os.listdir(outside) == []
    await proxy.storage.DeleteFiles(
        pb.DeleteFilesRequest(vfolder=ref, relpaths=["dir-link"], recursive=True), metadata=AUTH
    )
    assert (victim / "secret.txt").exists() and not (root / "dir-link").exists()

    # Listings show links as links; archives skip them.
    listed = await proxy.storage.ListFiles(
        pb.ListFilesRequest(vfolder=ref, relpath="real"), metadata=AUTH
    )
    assert {(e.name, e.symlink_target) for e in listed.entries} == {
        ("inner-link", "/etc/passwd"),
        ("ok.txt", ""),
    }
    archive = await token_for(proxy, ref, "", pb.TRANSFER_OP_ARCHIVE_DOWNLOAD)
    blob, _ = await download(proxy.files, archive)
    with zipfile.ZipFile(io.BytesIO(blob)) as zf:
        assert sorted(zf.namelist()) == ["file-link", "real/ok.txt"]


async def test_tokens_for_another_folder_path_or_operation(proxy: Proxy) -> None:
    mine = await new_folder(proxy)
    theirs = await new_folder(proxy)
    (folder_path(proxy, mine) / "a").mkdir()
    (folder_path(proxy, mine) / "a" / "f").write_text("a")
    (folder_path(proxy, mine) / "b").write_text("b")
    (folder_path(proxy, theirs) / "t").write_text("theirs")
    down_a = await token_for(proxy, mine, "a", pb.TRANSFER_OP_DOWNLOAD)
    # Another path: a sibling of the token's path, or another folder, through the path.
    for path in ("../b", f"../../{theirs.folder_id}/t"):
        with pytest.raises(grpc.aio.AioRpcError) as caught:
            await download(proxy.files, down_a, path=path)
        assert reason_of(caught.value) == "TRANSFER_SCOPE_VIOLATION"
    # Another operation.
    with pytest.raises(grpc.aio.AioRpcError) as caught:
        await upload(proxy.files, down_a, b"x", path="f")
    assert reason_of(caught.value) == "TRANSFER_SCOPE_VIOLATION"
    up = await token_for(proxy, mine, "b")
    for call in (
        download(proxy.files, up),
        proxy.files.ListDirectory(file_pb2.ListDirectoryRequest(token=up)),
    ):
        with pytest.raises(grpc.aio.AioRpcError) as caught:
            await call
        assert reason_of(caught.value) == "TRANSFER_SCOPE_VIOLATION"
    # Another folder: the claims rewritten to name it no longer verify.
    claims = {**vars(tokens.verify(JWT_SECRET, down_a))}
    scope = QuotaScopeId("user", parse_uuid(theirs.quota_scope.id, "id"))
    claims["vfid"] = VFolderId(scope, parse_uuid(theirs.folder_id, "id")).vfid
    head, _, signature = down_a.split(".")
    forged = jwt.encode(claims, "not-the-secret" * 4, algorithm="HS256").split(".")[1]
    with pytest.raises(grpc.aio.AioRpcError) as caught:
        await download(proxy.files, f"{head}.{forged}.{signature}", path="t")
    assert caught.value.code() == grpc.StatusCode.UNAUTHENTICATED
    assert reason_of(caught.value) == "TRANSFER_TOKEN_INVALID"


async def test_expired_badly_signed_and_missing_tokens(proxy: Proxy) -> None:
    ref = await new_folder(proxy)
    (folder_path(proxy, ref) / "f").write_text("x")
    claims = tokens.verify(JWT_SECRET, await token_for(proxy, ref, "f", pb.TRANSFER_OP_DOWNLOAD))
    expired, _ = tokens.issue(JWT_SECRET, claims, 60, now=time.time() - 120)
    wrong_key, _ = tokens.issue("another-secret-" + "k" * 32, claims, 60)
    for bad in (expired, wrong_key, "", "not.a.token"):
        with pytest.raises(grpc.aio.AioRpcError) as caught:
            await download(proxy.files, bad)
        assert caught.value.code() == grpc.StatusCode.UNAUTHENTICATED
        assert reason_of(caught.value) == "TRANSFER_TOKEN_INVALID"
