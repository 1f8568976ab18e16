from __future__ import annotations

import json
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from bai.cli.main import main
from tests.cli.fakes import Admin, servicers
from tests.client.fakes import Fake, serve


@dataclass
class Result:
    code: int
    out: str
    err: str

    def json(self) -> Any:
        return json.loads(self.out)


@dataclass
class Cli:
    """Runs ``bai`` in-process against the fake backend, with a throwaway config dir."""

    fake: Fake
    admin: Admin
    config_dir: Path
    capsys: pytest.CaptureFixture[str]

    def __call__(self, *argv: str) -> Result:
        self.capsys.readouterr()
        code = main(list(argv))
        captured = self.capsys.readouterr()
        return Result(code, captured.out, captured.err)


@pytest.fixture
def cli(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> Iterator[Cli]:
    for var in (
        "BAI_ENDPOINT",
        "BAI_ACCESS_KEY",
        "BAI_SECRET_KEY",
        "BAI_TOKEN",
        "BAI_PROFILE",
        "BAI_PASSWORD",
        "BAI_NEW_PASSWORD",
        "BAI_DEBUG",
    ):
        monkeypatch.delenv(var, raising=False)
    monkeypatch.setenv("BAI_CONFIG_DIR", str(tmp_path / "config"))
    fake = Fake()
    admin = Admin(fake)
    with serve(fake, servicers(admin)):
        monkeypatch.setenv("BAI_ENDPOINT", fake.address)
        yield Cli(fake, admin, tmp_path / "config", capsys)
