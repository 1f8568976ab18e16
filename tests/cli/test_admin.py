"""`bai admin ...`: tables, --json, requests sent, error lines and exit codes."""

from __future__ import annotations

import sys
import types

import pytest

from bai.api.manager.v1 import auth_pb2, resource_policy_pb2, scaling_group_pb2, user_pb2
from bai.cli import main as cli_main
from tests.cli.conftest import Cli
from tests.client.fakes import ACCESS_KEY, SECRET_KEY


def kv(out: str) -> dict[str, str]:
    """The ``key  value`` lines of an info block."""
    return dict(line.split(None, 1) if " " in line else (line, "") for line in out.splitlines())


@pytest.fixture
def admin(cli: Cli, monkeypatch: pytest.MonkeyPatch) -> Cli:
    monkeypatch.setenv("BAI_ACCESS_KEY", ACCESS_KEY)
    monkeypatch.setenv("BAI_SECRET_KEY", SECRET_KEY)
    return cli


def test_domain_lifecycle(admin: Cli) -> None:
    r = admin(
        "admin",
        "domain",
        "create",
        "research",
        "--description",
        "R&D",
        "--slot",
        "cpu=64",
        "--slot",
        "mem=8g",
        "--docker-registry",
        "cr.example.com",
    )
    assert r.code == 0, r.err
    assert kv(r.out)["total_resource_slots"] == "cpu=64,mem=8589934592"
    admin("admin", "domain", "create", "alpha")
    r = admin("admin", "domain", "ls")
    lines = r.out.splitlines()
    assert lines[0].split()[:3] == ["NAME", "ACTIVE", "TOTAL"]
    assert lines[1].startswith("alpha") and lines[2].startswith("research")
    assert "cpu=64,mem=8589934592" in lines[2] and "2023-11-14T22:13:20Z" in lines[2]
    listed = admin("admin", "domain", "list", "--json").json()
    assert [d["name"] for d in listed] == ["alpha", "research"]
    assert listed[0]["is_active"] is True and listed[0]["description"] == ""
    r = admin(
        "admin",
        "domain",
        "update",
        "research",
        "--no-active",
        "--clear",
        "allowed_docker_registries",
    )
    assert r.code == 0, r.err
    update = admin.fake.calls_to("UpdateDomain")[-1].request
    assert sorted(update.update_mask.paths) == ["allowed_docker_registries", "is_active"]
    info = admin("admin", "domain", "info", "research", "--json").json()
    assert info["is_active"] is False and info["allowed_docker_registries"] == []
    r = admin("admin", "domain", "rm", "alpha")
    assert (r.code, r.out) == (0, "deleted domain alpha\n")
    assert admin("admin", "domain", "rm", "research", "--json").out.strip() == "{}"


def test_error_lines_and_exit_codes(admin: Cli) -> None:
    r = admin("admin", "domain", "info", "ghost")
    assert (r.code, r.out, r.err) == (4, "", "error: NOT_FOUND: domain not found\n")
    admin("admin", "domain", "create", "dup")
    r = admin("admin", "domain", "create", "dup")
    assert r.code == 5 and r.err == "error: ALREADY_EXISTS: domain dup exists\n"
    r = admin("admin", "domain", "rm", "busy")
    assert r.code == 5 and r.err.startswith("error: FAILED_PRECONDITION (IN_USE): ")
    r = admin("admin", "domain", "create", "")
    assert r.code == 2
    assert r.err == (
        "error: INVALID_ARGUMENT (INVALID_FIELD): invalid request; domain.name: must not be empty\n"
    )
    r = admin("admin", "domain", "info", "fail-PERMISSION_DENIED")
    assert r.code == 4 and "PERMISSION_DENIED" in r.err


def test_usage_errors_exit_2(admin: Cli) -> None:
    r = admin("admin", "domain", "create")
    assert r.code == 2 and "required: NAME" in r.err
    r = admin("admin", "domain", "update", "research")
    assert r.code == 2 and r.err.startswith("error: nothing to update")
    r = admin("admin", "domain", "create", "x", "--slot", "cpu")
    assert r.code == 2 and "--slot expects KEY=VALUE" in r.err
    r = admin("admin", "nonsense")
    assert r.code == 2


def test_unreachable_server_exit_6(admin: Cli) -> None:
    r = admin("admin", "domain", "ls", "--endpoint", "127.0.0.1:1", "--timeout", "3")
    assert r.code == 6 and r.err.startswith("error: UNAVAILABLE")


def test_projects_and_members_by_name(admin: Cli) -> None:
    alice = admin.admin.add_user("alice")
    r = admin("admin", "project", "create", "ml", "--domain", "default", "--type", "model-store")
    assert r.code == 0, r.err
    assert kv(r.out)["type"] == "model-store"
    r = admin("admin", "group", "members", "add", "ml", "alice")  # upstream's name, by name
    assert r.code == 0, r.err
    r = admin("admin", "project", "members", "ls", "ml")
    assert r.out.splitlines()[0].split() == ["USER", "ID", "USERNAME", "EMAIL", "ROLE"]
    assert alice.id in r.out and "alice@example.com" in r.out and " user" in r.out
    assert admin("admin", "project", "members", "rm", "ml", alice.email).code == 0
    assert admin("admin", "project", "members", "ls", "ml", "--json").json() == []
    r = admin("admin", "project", "info", "nope")
    assert r.code == 4 and r.err == "error: NOT_FOUND: project 'nope' not found\n"


def test_user_create_with_keypair_and_filters(admin: Cli) -> None:
    r = admin(
        "admin",
        "user",
        "create",
        "bob",
        "--domain",
        "default",
        "--email",
        "b@x.io",
        "--password",
        "secret-pass",
        "--role",
        "admin",
        "--keypair",
        "--container-gids",
        "100,200",
    )
    assert r.code == 0, r.err
    assert "secret_key" in r.out and "s" * 40 in r.out and "shown only now" in r.err
    created = admin.admin.requests[-1]
    assert created.user.role == auth_pb2.USER_ROLE_ADMIN
    assert list(created.user.container_gids) == [100, 200] and created.create_keypair
    r = admin("admin", "user", "ls", "--role", "admin")
    assert admin.admin.requests[-1].role == auth_pb2.USER_ROLE_ADMIN
    assert "bob" in r.out and "active" not in r.out.splitlines()[0]
    info = admin("admin", "user", "info", "bob", "--json").json()
    assert info["role"] == "USER_ROLE_ADMIN" and info["status"] == "USER_STATUS_UNSPECIFIED"
    assert isinstance(admin.admin.requests[-1], user_pb2.ListUsersRequest)


def test_keypair_create_prints_the_secret_once(admin: Cli) -> None:
    bob = admin.admin.add_user("bob")
    r = admin("admin", "keypair", "create", "bob", "--rate-limit", "100", "--json")
    assert r.code == 0, r.err
    assert r.json()["secret_key"] == "k" * 40 and r.json()["keypair"]["user_id"] == bob.id
    assert admin.admin.requests[-1].rate_limit == 100
    assert len(admin.admin.requests[-1].request_id) == 32  # the SDK filled it


def test_policies(admin: Cli) -> None:
    r = admin(
        "admin",
        "policy",
        "keypair",
        "create",
        "gpu",
        "--slot",
        "cuda.shares=0.5,mem=1.5g",
        "--idle-timeout",
        "600",
        "--default-for-unspecified",
        "limited",
        "--max-priority",
        "0",
    )
    assert r.code == 0, r.err
    request = admin.admin.requests[-1]
    assert isinstance(request, resource_policy_pb2.CreateKeypairResourcePolicyRequest)
    policy = request.policy
    assert dict(policy.total_resource_slots.slots) == {"cuda.shares": "0.5", "mem": "1610612736"}
    assert policy.idle_timeout.seconds == 600 and policy.HasField("max_priority")
    assert policy.default_for_unspecified == resource_policy_pb2.DEFAULT_FOR_UNSPECIFIED_LIMITED
    assert "idle_timeout" in r.out and "600s" in r.out
    r = admin("admin", "user-resource-policy", "update", "default", "--max-vfolder-count", "0")
    assert r.code == 0, r.err
    assert list(admin.admin.requests[-1].update_mask.paths) == ["max_vfolder_count"]


def test_scaling_group_associate_and_update_keeps_options(admin: Cli) -> None:
    r = admin("admin", "sgroup", "associate", "gpu", "--domain", "default")
    assert (r.code, r.out) == (0, "associated scaling group gpu with domain default\n")
    request = admin.admin.requests[-1]
    assert request.WhichOneof("target") == "domain_name"
    r = admin("admin", "scaling-group", "associate", "gpu", "--domain", "a", "--access-key", "b")
    assert r.code == 2
    r = admin("admin", "scaling-group", "update", "gpu", "--agent-selection", "concentrated")
    assert r.code == 0, r.err
    update = admin.admin.requests[-1]
    assert list(update.update_mask.paths) == ["scheduler_opts"]
    opts = update.scaling_group.scheduler_opts
    assert list(opts.allowed_session_types) == ["interactive", "batch"]
    assert opts.pending_timeout.seconds == 60
    assert opts.agent_selection_strategy == scaling_group_pb2.AGENT_SELECTION_STRATEGY_CONCENTRATED


def test_audit_ls(admin: Cli) -> None:
    r = admin("admin", "audit", "ls", "--since", "2024-01-01", "--entity-type", "domain")
    assert r.code == 0, r.err
    request = admin.admin.requests[-1]
    assert request.since.seconds == 1704067200 and request.entity_type == "domain"
    header, row = r.out.splitlines()
    assert header.split()[:3] == ["TIME", "ACTOR", "METHOD"]
    assert "admin@bai.local" in row and "success" in row
    assert admin("admin", "audit", "ls", "--since", "yesterday").code == 2


def test_every_command_has_help(capsys: pytest.CaptureFixture[str]) -> None:
    for argv in (
        ["--help"],
        ["admin", "--help"],
        ["admin", "policy", "user", "rm", "--help"],
        ["config", "--help"],
        ["login", "--help"],
        ["admin", "project", "members", "add", "--help"],
    ):
        assert cli_main.main(argv) == 0
        assert "usage: bai" in capsys.readouterr().out


def test_server_commands_are_mounted(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    seen: list[list[str]] = []
    fake = types.ModuleType("bai_fake_component")
    fake.main = lambda argv: seen.append(argv) or 7  # type: ignore[attr-defined]
    monkeypatch.setitem(sys.modules, "bai_fake_component", fake)
    monkeypatch.setitem(cli_main.SERVERS, "agent", ("bai_fake_component", "an agent"))
    assert cli_main.main(["agent", "start", "--config", "x.toml"]) == 7
    assert seen == [["start", "--config", "x.toml"]]
    monkeypatch.setitem(cli_main.SERVERS, "storage", ("bai_missing_component.main", "x"))
    assert cli_main.main(["storage", "start"]) == 1
    assert "the storage component is not available here" in capsys.readouterr().err
    assert cli_main.main(["manager", "--help"]) == 0
    assert "usage: bai manager" in capsys.readouterr().out
