"""ensure_installed: apt-get only for what is missing, update at most once."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import pytest

from bai.stack import install


class FakeApt:
    def __init__(self) -> None:
        self.calls: list[list[str]] = []
        self.installed = {"postgresql": True, "redis-server": True, "etcd-server": True}

    def __call__(self, args: list[str]) -> None:
        self.calls.append(args)
        if args[0] == "install":
            self.installed.update(dict.fromkeys(args[3:], True))

    def checker(self, package: str) -> Callable[[], bool]:
        return lambda: self.installed[package]


@pytest.fixture
def apt(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> FakeApt:
    fake = FakeApt()
    packages = {
        comp: (pkg, fake.checker(pkg))
        for comp, (pkg, _) in install.PACKAGES.items()
        if pkg in fake.installed
    }
    monkeypatch.setattr(install, "PACKAGES", packages)
    monkeypatch.setattr(install, "_apt", fake)
    monkeypatch.setattr(install, "_updated", False)
    monkeypatch.setattr(install, "_POLICY_RC_D", tmp_path / "policy-rc.d")
    return fake


def test_nothing_missing_runs_no_apt(apt: FakeApt) -> None:
    assert install.ensure_installed() == []
    assert apt.calls == []


def test_installs_only_missing(apt: FakeApt) -> None:
    apt.installed["etcd-server"] = False
    # envoy has no Debian package (it comes from PyPI): ignored.
    assert install.ensure_installed(["postgres", "redis", "etcd", "envoy"]) == ["etcd-server"]
    assert apt.calls == [["update"], ["install", "-y", "--no-install-recommends", "etcd-server"]]
    apt.installed["etcd-server"] = False
    install.ensure_installed(["etcd"])
    assert apt.calls.count(["update"]) == 1  # update runs once per process
    assert not install._POLICY_RC_D.exists()  # removed after installing


def test_component_package_names() -> None:
    names = {comp: pkg for comp, (pkg, _) in install.PACKAGES.items()}
    assert names == {
        "postgres": "postgresql",
        "redis": "redis-server",
        "etcd": "etcd-server",
        "prometheus": "prometheus",
    }


def test_pg_bindir_found() -> None:
    bindir = install.pg_bindir()
    if bindir is None:
        pytest.skip("PostgreSQL not installed")
    assert (bindir / "initdb").exists() and (bindir / "pg_isready").exists()
