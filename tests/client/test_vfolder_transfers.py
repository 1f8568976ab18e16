"""bai.client.vfolder_transfers and vfolder_archive against the fake VFolderService and
the fake storage proxy FileService (real grpc servers on free ports): resumed
uploads and downloads, ranges, directory archives, token renewal, final errors."""

from __future__ import annotations

import hashlib
import io
import os
import threading
import zipfile
from collections.abc import Iterator
from pathlib import Path

import grpc
import pytest

from bai.client import Client, KeypairCredentials, errors
from bai.client.vfolder_archive import download_archive, download_dir, member_target
from bai.client.vfolder_transfers import TransferRetry, download_file, upload_file
from tests.cli.fake_vfolder_backend import VFolderBackend
from tests.client.fakes import ACCESS_KEY, SECRET_KEY

MiB = 1 << 20
FAST = TransferRetry(attempts=6, initial_backoff=0.05, max_backoff=0.2)


@pytest.fixture
def backend(tmp_path: Path) -> Iterator[VFolderBackend]:
    with VFolderBackend(tmp_path / "storage") as backend:
        yield backend


@pytest.fixture
def client(backend: VFolderBackend) -> Iterator[Client]:
    with Client(backend.fake.address, KeypairCredentials(ACCESS_KEY, SECRET_KEY)) as client:
        yield client


@pytest.fixture
def folder_id(backend: VFolderBackend) -> str:
    return backend.state.add("data").id


def local_file(tmp_path: Path, size: int, name: str = "big.bin") -> tuple[Path, str]:
    path = tmp_path / name
    path.write_bytes(os.urandom(size))
    return path, hashlib.sha256(path.read_bytes()).hexdigest()


def stored(backend: VFolderBackend, folder_id: str, path: str) -> Path:
    return backend.storage.file(folder_id, path)


def calls(backend: VFolderBackend, method: str) -> list[object]:
    return [c.request for c in backend.fake.calls_to(method)]


def test_upload_resumes_after_a_broken_stream_and_the_checksum_matches(
    backend: VFolderBackend, client: Client, folder_id: str, tmp_path: Path
) -> None:
    source, digest = local_file(tmp_path, 5 * MiB + 123)
    backend.storage.break_upload_at = 2 * MiB + MiB // 2
    seen: list[tuple[int, int]] = []
    result = upload_file(
        client,
        folder_id,
        source,
        "in/big.bin",
        retry=FAST,
        progress=lambda done, total: seen.append((done, total)),
    )
    assert (result.path, result.size, result.sha256, result.attempts) == (
        "in/big.bin",
        source.stat().st_size,
        digest,
        2,
    )
    target = stored(backend, folder_id, "in/big.bin")
    assert hashlib.sha256(target.read_bytes()).hexdigest() == digest
    uploads = calls(backend, "Upload")
    assert [u.header.offset for u in uploads] == [0, 3 * MiB]  # type: ignore[attr-defined]
    assert all(u.header.sha256 == digest for u in uploads)  # type: ignore[attr-defined]
    assert len(calls(backend, "GetUploadOffset")) == 1
    assert max(backend.storage.upload_chunk_sizes) == MiB
    assert seen[-1] == (source.stat().st_size, source.stat().st_size)
    assert backend.storage.partials == {}


@pytest.mark.parametrize("expire_tokens", [False, True])
def test_upload_survives_a_storage_proxy_restart(
    backend: VFolderBackend, client: Client, folder_id: str, tmp_path: Path, expire_tokens: bool
) -> None:
    source, digest = local_file(tmp_path, 4 * MiB)
    backend.storage.pause_upload_at = 2 * MiB
    outcome: dict[str, object] = {}

    def run() -> None:
        try:
            outcome["result"] = upload_file(client, folder_id, source, "model.bin", retry=FAST)
        except Exception as exc:
            outcome["error"] = exc

    worker = threading.Thread(target=run)
    worker.start()
    assert backend.storage.paused.wait(30)
    if expire_tokens:
        backend.storage.expire_tokens()
    backend.files.stop()
    assert not stored(backend, folder_id, "model.bin").exists()  # nothing half-written
    backend.files.start()
    worker.join(60)
    assert "error" not in outcome, outcome
    uploaded = stored(backend, folder_id, "model.bin").read_bytes()
    assert hashlib.sha256(uploaded).hexdigest() == digest
    resumed_from = [u.header.offset for u in calls(backend, "Upload")][-1]  # type: ignore[attr-defined]
    assert resumed_from == 2 * MiB
    assert len(calls(backend, "RequestUploadToken")) == (2 if expire_tokens else 1)


def test_a_wrong_checksum_leaves_nothing_in_place(
    backend: VFolderBackend, client: Client, folder_id: str, tmp_path: Path
) -> None:
    source, _ = local_file(tmp_path, MiB + 1)
    with pytest.raises(errors.Internal) as caught:
        upload_file(client, folder_id, source, "x.bin", sha256="0" * 64, retry=FAST)
    assert (caught.value.code, caught.value.reason) == (
        grpc.StatusCode.DATA_LOSS,
        "CHECKSUM_MISMATCH",
    )
    assert not stored(backend, folder_id, "x.bin").exists()
    assert len(calls(backend, "Upload")) == 1  # final, not retried


def test_quota_and_permission_errors_are_final(
    backend: VFolderBackend, client: Client, folder_id: str, tmp_path: Path
) -> None:
    source, _ = local_file(tmp_path, 2048)
    backend.storage.quota_bytes = 1024
    with pytest.raises(errors.ResourceExhausted) as caught:
        upload_file(client, folder_id, source, "x.bin", retry=FAST)
    assert caught.value.reason == "STORAGE_QUOTA_EXCEEDED"
    with pytest.raises(errors.NotFound):
        upload_file(client, "no-such-folder", source, "x.bin", retry=FAST)
    assert calls(backend, "Upload") == []


def test_download_a_range_resuming_where_the_stream_broke(
    backend: VFolderBackend, client: Client, folder_id: str, tmp_path: Path
) -> None:
    data = os.urandom(6 * MiB)
    target = stored(backend, folder_id, "data/blob.bin")
    target.parent.mkdir(parents=True)
    target.write_bytes(data)
    backend.storage.break_download_at = 3 * MiB
    sink = io.BytesIO()
    progress: list[tuple[int, int]] = []
    result = download_file(
        client,
        folder_id,
        "data/blob.bin",
        sink,
        offset=1000,
        length=4 * MiB,
        retry=FAST,
        progress=lambda done, total: progress.append((done, total)),
    )
    assert sink.getvalue() == data[1000 : 1000 + 4 * MiB]
    assert (result.size, result.attempts) == (4 * MiB, 2)
    requests = calls(backend, "Download")
    assert [(r.offset, r.length) for r in requests] == [  # type: ignore[attr-defined]
        (1000, 4 * MiB),
        (1000 + 3 * MiB, MiB),
    ]
    assert progress[-1] == (4 * MiB, 4 * MiB)

    whole = io.BytesIO()
    assert download_file(client, folder_id, "data/blob.bin", whole).size == len(data)
    assert whole.getvalue() == data


def test_download_errors(backend: VFolderBackend, client: Client, folder_id: str) -> None:
    stored(backend, folder_id, "dir").mkdir()
    with pytest.raises(errors.NotFound):
        download_file(client, folder_id, "missing.bin", io.BytesIO(), retry=FAST)
    with pytest.raises(errors.FailedPrecondition) as caught:
        download_file(client, folder_id, "dir", io.BytesIO(), retry=FAST)
    assert caught.value.reason == "PATH_TYPE_MISMATCH"
    stored(backend, folder_id, "small.bin").write_bytes(b"abc")
    with pytest.raises(errors.InvalidArgument):
        download_file(client, folder_id, "small.bin", io.BytesIO(), offset=2, length=5)


def test_download_a_directory_as_an_archive(
    backend: VFolderBackend, client: Client, folder_id: str, tmp_path: Path
) -> None:
    root = stored(backend, folder_id, "outputs")
    (root / "sub").mkdir(parents=True)
    (root / "a.txt").write_bytes(b"alpha")
    big = os.urandom(3 * MiB)
    (root / "sub" / "b.bin").write_bytes(big)
    (root / "empty").mkdir()
    backend.storage.break_download_at = 2 * MiB  # the archive starts over

    result, count = download_dir(client, folder_id, "outputs", tmp_path / "local", retry=FAST)
    assert count == 2 and result.attempts == 2
    assert (tmp_path / "local" / "a.txt").read_bytes() == b"alpha"
    assert (tmp_path / "local" / "sub" / "b.bin").read_bytes() == big
    assert (tmp_path / "local" / "empty").is_dir()

    with open(tmp_path / "out.zip", "w+b") as sink:
        sink.write(b"prefix")
        zipped = download_archive(client, folder_id, "outputs", sink)
    raw = (tmp_path / "out.zip").read_bytes()
    assert raw.startswith(b"prefix") and len(raw) == 6 + zipped.size
    names = zipfile.ZipFile(io.BytesIO(raw[6:])).namelist()
    assert sorted(names) == ["a.txt", "empty/", "sub/", "sub/b.bin"]


@pytest.mark.parametrize(
    "name", ["../evil", "/etc/passwd", "a/../../b", "a\\b", "nul\x00", "a/../.."]
)
def test_archive_entries_may_not_leave_the_target(tmp_path: Path, name: str) -> None:
    with pytest.raises(ValueError):
        member_target(tmp_path, name)


def test_archive_entry_targets(tmp_path: Path) -> None:
    assert member_target(tmp_path, "a/b.txt") == tmp_path / "a" / "b.txt"
    assert member_target(tmp_path, "./a/./b.txt") == tmp_path / "a" / "b.txt"
    assert member_target(tmp_path, "dir/") is None


def test_a_new_call_starts_an_interrupted_upload_afresh(
    backend: VFolderBackend, client: Client, folder_id: str, tmp_path: Path
) -> None:
    first, _ = local_file(tmp_path, 3 * MiB, "first.bin")
    backend.storage.break_upload_at = 2 * MiB
    with pytest.raises(errors.Unavailable):
        upload_file(client, folder_id, first, "f.bin", retry=TransferRetry(attempts=1))
    assert not stored(backend, folder_id, "f.bin").exists()
    second, digest = local_file(tmp_path, 3 * MiB, "second.bin")
    assert upload_file(client, folder_id, second, "f.bin", retry=FAST).attempts == 1
    assert [u.header.offset for u in calls(backend, "Upload")] == [0, 0]  # type: ignore[attr-defined]
    assert hashlib.sha256(stored(backend, folder_id, "f.bin").read_bytes()).hexdigest() == digest


def test_an_upload_the_proxy_forgot_starts_over(
    backend: VFolderBackend, client: Client, folder_id: str, tmp_path: Path
) -> None:
    source, digest = local_file(tmp_path, 3 * MiB)
    backend.storage.pause_upload_at = MiB
    outcome: dict[str, object] = {}

    def run() -> None:
        outcome["result"] = upload_file(client, folder_id, source, "f.bin", retry=FAST)

    worker = threading.Thread(target=run)
    worker.start()
    assert backend.storage.paused.wait(30)
    backend.files.stop()
    backend.storage.partials.clear()  # like a proxy that swept the abandoned upload
    backend.files.start()
    worker.join(60)
    assert "result" in outcome
    assert [u.header.offset for u in calls(backend, "Upload")] == [0, 0]  # type: ignore[attr-defined]
    assert hashlib.sha256(stored(backend, folder_id, "f.bin").read_bytes()).hexdigest() == digest
