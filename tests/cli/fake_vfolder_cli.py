"""The ``vbai`` fixture: runs ``bai`` in-process against the fake vfolder backend
(tests.cli.fake_vfolder_service) with keypair credentials, in a scratch directory."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from tests.cli.conftest import Result, keypair_env, run_bai
from tests.cli.fake_vfolder_backend import VFolderBackend


@dataclass
class VBai:
    backend: VFolderBackend
    capsys: pytest.CaptureFixture[str]
    work: Path

    def __call__(self, *argv: str) -> Result:
        return run_bai(self.capsys, list(argv))

    def file(self, folder_id: str, path: str) -> Path:
        return self.backend.storage.file(folder_id, path)


@pytest.fixture
def vbai(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> Iterator[VBai]:
    keypair_env(monkeypatch, tmp_path / "config")
    work = tmp_path / "work"
    work.mkdir()
    monkeypatch.chdir(work)
    with VFolderBackend(tmp_path / "storage") as backend:
        monkeypatch.setenv("BAI_ENDPOINT", backend.fake.address)
        yield VBai(backend, capsys, work)
