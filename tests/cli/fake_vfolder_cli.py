"""The ``vbai`` fixture: runs ``bai`` in-process against the fake vfolder backend
(tests.cli.fake_vfolder_service) with keypair credentials, in a scratch directory."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from bai.cli.main import main
from tests.cli.conftest import Result
from tests.cli.fake_vfolder_backend import VFolderBackend
from tests.client.fakes import ACCESS_KEY, SECRET_KEY


@dataclass
class VBai:
    backend: VFolderBackend
    capsys: pytest.CaptureFixture[str]
    work: Path

    def __call__(self, *argv: str) -> Result:
        self.capsys.readouterr()
        code = main(list(argv))
        captured = self.capsys.readouterr()
        return Result(code, captured.out, captured.err)

    def file(self, folder_id: str, path: str) -> Path:
        return self.backend.storage.file(folder_id, path)


@pytest.fixture
def vbai(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> Iterator[VBai]:
    for var in ("BAI_ENDPOINT", "BAI_TOKEN", "BAI_PROFILE", "BAI_DEBUG"):
        monkeypatch.delenv(var, raising=False)
    monkeypatch.setenv("BAI_CONFIG_DIR", str(tmp_path / "config"))
    monkeypatch.setenv("BAI_ACCESS_KEY", ACCESS_KEY)
    monkeypatch.setenv("BAI_SECRET_KEY", SECRET_KEY)
    work = tmp_path / "work"
    work.mkdir()
    monkeypatch.chdir(work)
    with VFolderBackend(tmp_path / "storage") as backend:
        monkeypatch.setenv("BAI_ENDPOINT", backend.fake.address)
        yield VBai(backend, capsys, work)
