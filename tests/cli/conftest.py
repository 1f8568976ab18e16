from __future__ import annotations

import json
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from bai.cli.main import main
from tests.cli.fakes import Admin, servicers
from tests.client.fakes import ACCESS_KEY, SECRET_KEY, Fake, serve


@dataclass
class Result:
    code: int
    out: str
    err: str

    def json(self) -> Any:
        return json.loads(self.out)


def run_bai(capsys: pytest.CaptureFixture[str], argv: list[str]) -> Result:
    """`bai ARGV` in-process: its exit code and what it printed."""
    capsys.readouterr()
    code = main(argv)
    captured = capsys.readouterr()
    return Result(code, captured.out, captured.err)


def keypair_env(monkeypatch: pytest.MonkeyPatch, config_dir: Path) -> None:
    """The CLI's environment for a keypair caller: no endpoint, token or profile from
    the outside, a throwaway config dir, the fakes' access and secret key."""
    for var in ("BAI_ENDPOINT", "BAI_TOKEN", "BAI_PROFILE", "BAI_DEBUG"):
        monkeypatch.delenv(var, raising=False)
    monkeypatch.setenv("BAI_CONFIG_DIR", str(config_dir))
    monkeypatch.setenv("BAI_ACCESS_KEY", ACCESS_KEY)
    monkeypatch.setenv("BAI_SECRET_KEY", SECRET_KEY)


@dataclass
class Cli:
    """Runs ``bai`` in-process against the fake backend, with a throwaway config dir."""

    fake: Fake
    admin: Admin
    config_dir: Path
    capsys: pytest.CaptureFixture[str]

    def __call__(self, *argv: str) -> Result:
        return run_bai(self.capsys, list(argv))


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
