"""`bai session upload|download|files` against the fake SessionService with files kept
in memory: names, chunking, stdin/stdout, exit codes, no half files left behind."""

from __future__ import annotations

import io
import json
import os
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import grpc
import pytest

from bai.api.common.v1 import storage_pb2
from bai.api.manager.v1 import auth_pb2_grpc, session_pb2, session_pb2_grpc
from tests.cli.conftest import Result, keypair_env, run_bai
from tests.cli.fake_session_service import FakeSessions, Sessions, SessionServer, streaming
from tests.client.fakes import FakeAuth, fail, handler

MiB = 1 << 20


@dataclass
class SessionFiles:
    """What the fake keeps: (session id, path) -> bytes, and the upload chunk sizes."""

    stored: dict[tuple[str, str], bytes] = field(default_factory=dict)
    chunk_sizes: list[int] = field(default_factory=list)
    # Paths whose download ends before the announced size.
    short: set[str] = field(default_factory=set)


class FakeSessionsWithFiles(FakeSessions):
    def __init__(self, state: Sessions, files: SessionFiles) -> None:
        super().__init__(state)
        self.files = files

    @handler
    def UploadSessionFile(self, requests: Iterator[Any], context: Any) -> Any:
        header = next(requests).header
        s = self.state.running(header.session_id)
        chunks = [r.chunk for r in requests]
        self.files.chunk_sizes = [len(c) for c in chunks]
        data = b"".join(chunks)
        if len(data) != header.size:
            raise fail(grpc.StatusCode.INVALID_ARGUMENT, "size mismatch", "INVALID_FIELD")
        self.files.stored[s.id, header.path] = data
        return session_pb2.UploadSessionFileResponse(path=header.path, size=len(data))

    @streaming
    def DownloadSessionFile(self, request: Any, context: Any) -> Iterator[Any]:
        s = self.state.running(request.session_id)
        data = self.files.stored.get((s.id, request.path))
        if data is None:
            raise fail(grpc.StatusCode.NOT_FOUND, f"{request.path} does not exist")
        announced = len(data) + (10 if request.path in self.files.short else 0)
        yield session_pb2.DownloadSessionFileResponse(chunk=data[:MiB], size=announced)
        for start in range(MiB, len(data), MiB):
            yield session_pb2.DownloadSessionFileResponse(chunk=data[start : start + MiB])

    @handler
    def ListSessionFiles(self, request: Any, context: Any) -> Any:
        s = self.state.running(request.session_id)
        entries = [
            storage_pb2.FileEntry(
                name=path, path=path, type=storage_pb2.FILE_TYPE_FILE, size=len(data), mode=0o644
            )
            for (sid, path), data in sorted(self.files.stored.items())
            if sid == s.id
        ]
        entries.append(
            storage_pb2.FileEntry(
                name="data", path="data", type=storage_pb2.FILE_TYPE_DIRECTORY, mode=0o755
            )
        )
        entries.append(
            storage_pb2.FileEntry(
                name="pw",
                path="pw",
                type=storage_pb2.FILE_TYPE_SYMLINK,
                size=11,
                mode=0o777,
                symlink_target="/etc/passwd",
            )
        )
        return session_pb2.ListSessionFilesResponse(
            entries=entries, truncated=request.path == "big"
        )


class FileServer(SessionServer):
    def __init__(self) -> None:
        super().__init__()
        self.files = SessionFiles()

    def start(self) -> None:
        server = grpc.server(ThreadPoolExecutor(max_workers=8))
        auth_pb2_grpc.add_AuthServiceServicer_to_server(FakeAuth(self.fake), server)  # type: ignore[abstract]
        servicer = FakeSessionsWithFiles(self.state, self.files)  # type: ignore[abstract]
        session_pb2_grpc.add_SessionServiceServicer_to_server(servicer, server)
        self.port = server.add_insecure_port("127.0.0.1:0")
        server.start()
        self.fake.address = self.address
        self._server = server


@dataclass
class Bai:
    server: FileServer
    capsys: pytest.CaptureFixture[str]
    session_id: str

    def __call__(self, *argv: str) -> Result:
        return run_bai(self.capsys, list(argv))

    def stored(self, path: str) -> bytes | None:
        return self.server.files.stored.get((self.session_id, path))


@pytest.fixture
def bai(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> Iterator[Bai]:
    keypair_env(monkeypatch, tmp_path / "config")
    work = tmp_path / "work"
    work.mkdir()
    monkeypatch.chdir(work)
    server = FileServer()
    with server:
        monkeypatch.setenv("BAI_ENDPOINT", server.address)
        session = server.state.add(session_pb2.CreateSessionRequest(name="files1", image="py"))
        server.state.start(session)
        yield Bai(server, capsys, session.id)


def test_upload_names_the_remote_file_and_sends_1_mib_chunks(bai: Bai) -> None:
    data = os.urandom(2 * MiB + MiB // 2)
    Path("model.bin").write_bytes(data)
    r = bai("session", "upload", "files1", "model.bin")
    assert r.code == 0, r.err
    assert r.out == f"uploaded model.bin to model.bin ({len(data)} bytes)\n"
    assert bai.stored("model.bin") == data
    assert bai.server.files.chunk_sizes == [MiB, MiB, MiB // 2]

    r = bai("session", "upload", bai.session_id, "model.bin", "inputs/", "--json")
    assert r.code == 0, r.err
    assert json.loads(r.out) == {"path": "inputs/model.bin", "size": str(len(data))}
    assert bai("session", "upload", "files1", "model.bin", "renamed.bin").code == 0
    assert bai.stored("renamed.bin") == data


def test_upload_from_stdin_needs_a_remote_name(bai: Bai, monkeypatch: pytest.MonkeyPatch) -> None:
    stdin = io.TextIOWrapper(io.BytesIO(b"piped\x00bytes"))
    monkeypatch.setattr("sys.stdin", stdin)
    r = bai("session", "upload", "files1", "-", "piped.bin")
    assert r.code == 0, r.err
    assert bai.stored("piped.bin") == b"piped\x00bytes"
    r = bai("session", "upload", "files1", "-")
    assert r.code == 2 and "give REMOTE" in r.err


def test_upload_refuses_directories_and_missing_files(bai: Bai) -> None:
    Path("folder").mkdir()
    r = bai("session", "upload", "files1", "folder")
    assert r.code == 2 and "is a directory" in r.err
    r = bai("session", "upload", "files1", "nothing.txt")
    assert r.code == 1 and "nothing.txt" in r.err
    assert bai.server.files.stored == {}


def test_download_to_a_name_a_directory_or_stdout(bai: Bai) -> None:
    data = os.urandom(MiB + 5)
    bai.server.files.stored[bai.session_id, "out/result.bin"] = data
    r = bai("session", "download", "files1", "out/result.bin")
    assert r.code == 0, r.err
    assert r.out == f"downloaded out/result.bin to result.bin ({len(data)} bytes)\n"
    assert Path("result.bin").read_bytes() == data
    Path("into").mkdir()
    r = bai("session", "download", "files1", "out/result.bin", "into", "--json")
    assert json.loads(r.out) == {"path": "into/result.bin", "size": len(data)}
    assert Path("into/result.bin").read_bytes() == data
    r = bai("session", "download", "files1", "out/result.bin", "copy.bin")
    assert Path("copy.bin").read_bytes() == data

    bai.server.files.stored[bai.session_id, "note.txt"] = b"hello\n"
    r = bai("session", "download", "files1", "note.txt", "-")
    assert (r.code, r.out) == (0, "hello\n")
    assert "downloaded note.txt (6 bytes)" in r.err


def test_a_failed_download_leaves_no_file(bai: Bai) -> None:
    Path("missing.txt").write_bytes(b"mine")
    r = bai("session", "download", "files1", "missing.txt")
    assert r.code == 4 and "missing.txt does not exist" in r.err
    assert Path("missing.txt").read_bytes() == b"mine"

    bai.server.files.stored[bai.session_id, "cut.bin"] = b"x" * 100
    bai.server.files.short.add("cut.bin")
    r = bai("session", "download", "files1", "cut.bin")
    assert r.code == 1 and "received 100 of 110 bytes" in r.err
    assert sorted(p.name for p in Path().iterdir()) == ["missing.txt"]


def test_files_lists_a_directory(bai: Bai) -> None:
    bai.server.files.stored[bai.session_id, "a.txt"] = b"x" * 2048
    r = bai("session", "files", "files1")
    assert r.code == 0, r.err
    lines = r.out.splitlines()
    assert lines[0].split() == ["MODE", "TYPE", "SIZE", "MODIFIED", "NAME"]
    assert lines[1].split() == ["-rw-r--r--", "file", "2k", "-", "a.txt"]
    assert lines[2].split() == ["drwxr-xr-x", "directory", "-", "-", "data/"]
    assert lines[3].split() == ["lrwxrwxrwx", "symlink", "11", "-", "pw", "->", "/etc/passwd"]
    listed = json.loads(bai("session", "files", "files1", "--json").out)
    assert [e["name"] for e in listed["entries"]] == ["a.txt", "data", "pw"]
    r = bai("session", "files", "files1", "big")
    assert r.code == 0 and "only the first 3 entries" in r.err
    r = bai("session", "files", "no-such-session")
    assert r.code == 4
