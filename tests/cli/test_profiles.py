"""Profiles, login/logout/whoami and credential resolution."""

from __future__ import annotations

import stat
import tomllib

import pytest

from tests.cli.conftest import Cli
from tests.client.fakes import ACCESS_KEY, PASSWORD, SECRET_KEY, TOKEN, USERNAME


def test_login_stores_the_token_and_whoami_uses_it(cli: Cli) -> None:
    r = cli("login", USERNAME, "--password", PASSWORD)
    assert r.code == 0, r.err
    assert "logged in as admin (superadmin)" in r.out
    path = cli.config_dir / "config.toml"
    data = tomllib.loads(path.read_text())
    assert data["profiles"]["default"]["token"] == TOKEN
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    r = cli("whoami")
    assert r.code == 0 and "username" in r.out and "superadmin" in r.out
    assert cli.fake.calls_to("WhoAmI")[-1].metadata["authorization"] == f"Bearer {TOKEN}"
    r = cli("logout")
    assert r.code == 0 and len(cli.fake.calls_to("Logout")) == 1
    assert "token" not in tomllib.loads(path.read_text())["profiles"]["default"]
    r = cli("whoami")
    assert r.code == 3 and r.err.startswith("error: no credentials for profile 'default'")


def test_login_password_from_environment(cli: Cli, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("BAI_PASSWORD", PASSWORD)
    assert cli("login", USERNAME, "--profile", "work").code == 0
    assert cli("config", "profiles").out.count("token") == 1


def test_wrong_password_is_an_auth_error(cli: Cli) -> None:
    r = cli("login", USERNAME, "--password", "nope")
    assert r.code == 3
    assert r.err == "error: UNAUTHENTICATED (LOGIN_FAILED): login failed\n"
    assert r.out == ""


def test_keypair_in_profile_signs_calls(cli: Cli) -> None:
    assert cli("config", "set", "access_key", ACCESS_KEY).code == 0
    r = cli("config", "set", "secret_key", SECRET_KEY)
    assert r.code == 0 and SECRET_KEY not in r.out
    r = cli("whoami", "--json")
    assert r.code == 0 and r.json()["access_key"] == ACCESS_KEY
    r = cli("config", "show")
    assert ACCESS_KEY in r.out and SECRET_KEY not in r.out


def test_environment_overrides_the_profile(cli: Cli, monkeypatch: pytest.MonkeyPatch) -> None:
    cli("config", "set", "access_key", "AKIAWRONGWRONGWRONG1")
    cli("config", "set", "secret_key", "wrong")
    assert cli("whoami").code == 3
    monkeypatch.setenv("BAI_ACCESS_KEY", ACCESS_KEY)
    monkeypatch.setenv("BAI_SECRET_KEY", SECRET_KEY)
    assert cli("whoami").code == 0


def test_profiles_use_and_unset(cli: Cli) -> None:
    cli("config", "set", "endpoint", "10.0.0.1:8090", "--profile", "lab")
    r = cli("config", "use", "lab")
    assert r.code == 0 and "lab" in r.out
    r = cli("config", "profiles")
    lines = r.out.splitlines()
    assert lines[0].split() == ["NAME", "ENDPOINT", "AUTH"]
    assert any(line.startswith("*") and "lab" in line and "10.0.0.1:8090" in line for line in lines)
    r = cli("config", "profiles", "--json")
    assert {"name": "lab", "current": True, "endpoint": "10.0.0.1:8090"} in r.json()
    assert cli("config", "unset", "endpoint").code == 0
    assert "endpoint" not in cli("config", "show", "lab", "--json").json()


def test_unreadable_config_is_reported(cli: Cli) -> None:
    cli.config_dir.mkdir(parents=True)
    (cli.config_dir / "config.toml").write_text("current = [broken")
    r = cli("whoami")
    assert r.code == 1 and r.err.startswith("error: cannot read ")
