"""`bai vfolder mkdir|files|mv|rm-file|upload|download` against the fake VFolderService
and the fake storage proxy: transfers, resume, ranges, directories, no half files."""

from __future__ import annotations

import hashlib
import io
import os
import zipfile
from pathlib import Path

import pytest

from bai.cli.vfolder_progress import TransferBar, bar_text
from tests.cli.fake_vfolder_cli import VBai, vbai

__all__ = ["vbai"]

MiB = 1 << 20


@pytest.fixture
def folder(vbai: VBai) -> str:
    return vbai.backend.state.add("data").id


def test_upload_a_file_resuming_a_broken_stream(vbai: VBai, folder: str) -> None:
    data = os.urandom(3 * MiB + 7)
    Path("model.bin").write_bytes(data)
    vbai.backend.storage.break_upload_at = 2 * MiB
    r = vbai("vfolder", "upload", "data", "model.bin")
    assert r.code == 0, r.err
    assert r.out == f"uploaded model.bin to data:model.bin ({len(data)} bytes)\n"
    assert "model.bin: resumed after 1 broken attempt(s)" in r.err
    assert vbai.file(folder, "model.bin").read_bytes() == data
    assert max(vbai.backend.storage.upload_chunk_sizes) == MiB

    r = vbai("vfolder", "upload", "data", "model.bin", "--to", "in", "--json")
    (row,) = r.json()
    assert row == {
        "path": "in/model.bin",
        "size": len(data),
        "sha256": hashlib.sha256(data).hexdigest(),
        "attempts": 1,
    }


def test_upload_directories_and_base_dir(vbai: VBai, folder: str) -> None:
    Path("proj/src").mkdir(parents=True)
    Path("proj/src/main.py").write_text("print(1)\n")
    Path("proj/README").write_text("hi\n")
    r = vbai("vfolder", "upload", "data", "proj", "--to", "code")
    assert r.code == 0, r.err
    assert vbai.file(folder, "code/proj/src/main.py").read_text() == "print(1)\n"
    assert vbai.file(folder, "code/proj/README").read_text() == "hi\n"
    r = vbai("vfolder", "upload", "data", "src/main.py", "--base-dir", "proj")
    assert r.code == 0, r.err
    assert vbai.file(folder, "src/main.py").read_text() == "print(1)\n"
    r = vbai("vfolder", "upload", "data", "../x", "--base-dir", "proj")
    assert r.code == 2 and "give paths inside it" in r.err


def test_upload_errors(vbai: VBai, folder: str) -> None:
    r = vbai("vfolder", "upload", "data", "missing.bin")
    assert r.code == 1 and "missing.bin" in r.err
    Path("big.bin").write_bytes(b"x" * 4096)
    vbai.backend.storage.quota_bytes = 1024
    r = vbai("vfolder", "upload", "data", "big.bin")
    assert r.code == 1 and "RESOURCE_EXHAUSTED (STORAGE_QUOTA_EXCEEDED)" in r.err
    r = vbai("vfolder", "upload", "nope", "big.bin")
    assert r.code == 4 and "no vfolder named 'nope'" in r.err
    assert not vbai.file(folder, "big.bin").exists()


def test_download_files_ranges_and_stdout(vbai: VBai, folder: str) -> None:
    data = os.urandom(2 * MiB + 3)
    vbai.file(folder, "out").mkdir()
    vbai.file(folder, "out/result.bin").write_bytes(data)
    vbai.backend.storage.break_download_at = MiB
    r = vbai("vfolder", "download", "data", "out/result.bin")
    assert r.code == 0, r.err
    assert r.out == f"downloaded data:out/result.bin to result.bin ({len(data)} bytes)\n"
    assert Path("result.bin").read_bytes() == data
    offsets = [c.request.offset for c in vbai.backend.fake.calls_to("Download")]
    assert offsets == [0, MiB]

    r = vbai("vfolder", "download", "data", "out/result.bin", "-o", "part.bin",
             "--offset", "10", "--length", "100")  # fmt: skip
    assert r.code == 0 and Path("part.bin").read_bytes() == data[10:110]
    Path("into").mkdir()
    r = vbai("vfolder", "download", "data", "out/result.bin", "-b", "into", "--json")
    assert r.json() == [{"path": "into/result.bin", "size": len(data), "kind": "file"}]
    vbai.file(folder, "note.txt").write_bytes(b"hello\n")
    r = vbai("vfolder", "download", "data", "note.txt", "-o", "-")
    assert (r.code, r.out) == (0, "hello\n") and "downloaded note.txt (6 bytes)" in r.err


def test_download_a_directory_extracted_or_zipped(vbai: VBai, folder: str) -> None:
    vbai.file(folder, "outputs/sub").mkdir(parents=True)
    vbai.file(folder, "outputs/a.txt").write_text("alpha")
    vbai.file(folder, "outputs/sub/b.txt").write_text("beta")
    r = vbai("vfolder", "download", "data", "outputs")
    assert r.code == 0, r.err
    assert r.out.startswith("downloaded data:outputs to outputs (2 files, ")
    assert Path("outputs/a.txt").read_text() == "alpha"
    assert Path("outputs/sub/b.txt").read_text() == "beta"
    r = vbai("vfolder", "download", "data", "outputs", "--zip")
    assert r.code == 0, r.err
    names = zipfile.ZipFile(io.BytesIO(Path("outputs.zip").read_bytes())).namelist()
    assert sorted(names) == ["a.txt", "sub/", "sub/b.txt"]
    r = vbai("vfolder", "download", "data", "/", "-b", "whole")
    assert r.code == 0 and Path("whole/data/outputs/a.txt").read_text() == "alpha"
    r = vbai("vfolder", "download", "data", "outputs", "--offset", "5")
    assert r.code == 2 and "is a directory" in r.err


def test_a_failed_download_leaves_no_file(vbai: VBai, folder: str) -> None:
    Path("missing.txt").write_bytes(b"mine")
    r = vbai("vfolder", "download", "data", "missing.txt")
    assert r.code == 4 and "missing.txt does not exist" in r.err
    assert Path("missing.txt").read_bytes() == b"mine"
    vbai.file(folder, "small.bin").write_bytes(b"abc")
    r = vbai("vfolder", "download", "data", "small.bin", "--offset", "2", "--length", "9")
    assert r.code == 2 and "INVALID_FIELD" in r.err
    assert sorted(p.name for p in Path().iterdir()) == ["missing.txt"]
    r = vbai("vfolder", "download", "data", "a", "b", "-o", "x")
    assert r.code == 2 and "single REMOTE" in r.err


def test_mkdir_files_mv_and_rm_file(vbai: VBai, folder: str) -> None:
    r = vbai("vfolder", "mkdir", "data", "a/b", "-p")
    assert r.code == 0 and r.out == "created a/b\n"
    r = vbai("vfolder", "mkdir", "data", "a/b")
    assert r.code == 5 and "ALREADY_EXISTS" in r.err
    assert vbai("vfolder", "mkdir", "data", "a/b", "--exist-ok").code == 0
    r = vbai("vfolder", "mkdir", "data", "../up")
    assert r.code == 2 and "INVALID_FIELD" in r.err
    vbai.file(folder, "a/x.txt").write_bytes(b"x" * 2048)

    r = vbai("vfolder", "files", "data", "a")
    assert r.code == 0, r.err
    lines = r.out.splitlines()
    assert lines[0].split() == ["MODE", "TYPE", "SIZE", "MODIFIED", "NAME"]
    assert lines[1].split()[1:] == ["directory", "-", "2023-11-14T22:13:20Z", "b/"]
    assert lines[2].split()[1:] == ["file", "2k", "2023-11-14T22:13:20Z", "x.txt"]
    entries = vbai("vfolder", "files", "data", "--json").json()["entries"]
    assert [e["path"] for e in entries] == ["a"]
    r = vbai("vfolder", "files", "data", "a/x.txt")
    assert r.code == 5 and "PATH_TYPE_MISMATCH" in r.err

    r = vbai("vfolder", "mv", "data", "a/x.txt", "a/b")
    assert r.code == 0 and r.out == "moved a/x.txt to a/b\n"
    assert vbai.file(folder, "a/b/x.txt").exists()
    r = vbai("vfolder", "mv", "data", "a/x.txt", "y")
    assert r.code == 4 and "does not exist" in r.err

    r = vbai("vfolder", "rm-file", "data", "a")
    assert r.code == 5 and "PATH_TYPE_MISMATCH" in r.err
    r = vbai("vfolder", "delete-file", "data", "a", "-r")
    assert r.code == 0 and r.out == "deleted a\n"
    assert not vbai.file(folder, "a").exists()


def test_progress_bar() -> None:
    assert bar_text("m.bin", 512, 1024, 1.0) == "m.bin [############............]  50% 512/1k 512/s"
    assert bar_text("dir", 3 * MiB, 0, 2.0) == "dir 3m 1.5m/s"
    stream = io.StringIO()
    bar = TransferBar("x", stream, enabled=True)
    bar(10, 100)
    bar(20, 100)  # within the redraw interval: skipped
    bar(100, 100)  # the end is always drawn
    bar.close()
    lines = stream.getvalue().split("\r")[1:]
    assert len(lines) == 2 and lines[-1].startswith("x [########################] 100%")
    assert stream.getvalue().endswith("\n")
    quiet = io.StringIO()
    TransferBar("x", quiet)(1, 2)  # not a terminal: nothing drawn
    assert quiet.getvalue() == ""
