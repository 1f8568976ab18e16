"""`bai app` and `bai apps` against the fake session service."""

from __future__ import annotations

import json

from bai.api.manager.v1 import session_pb2
from tests.cli import test_session_cmd
from tests.cli.test_session_cmd import Bai, created

bai = test_session_cmd.bai  # the fixture: the CLI against the fake session service


def test_app_prints_the_browser_url_with_its_one_time_token(bai: Bai) -> None:
    s = created(bai, "python:3.12", "--name", "work1")
    r = bai("app", "work1", "ttyd", "--env", "TERM=xterm", "--allow-ip", "10.0.0.0/8")
    assert r.code == 0, r.err
    assert r.out.strip() == "http://127.0.0.1:10205/?token=tok-ttyd"
    assert "Authorization: Bearer tok-ttyd" in r.err
    (request,) = bai.requests("StartService")
    assert isinstance(request, session_pb2.StartServiceRequest)
    assert request.session_id == s.id and request.service == "ttyd"
    assert dict(request.envs) == {"TERM": "xterm"}
    assert list(request.allowed_client_ips) == ["10.0.0.0/8"]


def test_a_public_app_needs_no_token(bai: Bai) -> None:
    created(bai, "python:3.12", "--name", "work2")
    r = bai("--json", "app", "work2", "jupyter", "--public")
    assert r.code == 0, r.err
    shown = json.loads(r.out)
    assert shown["browser_url"] == "http://127.0.0.1:10205/"
    assert shown["open_to_public"] is True and not shown.get("token")


def test_apps_lists_which_run_and_stop_closes_one(bai: Bai) -> None:
    created(bai, "python:3.12", "--name", "work3")
    assert bai("app", "work3", "jupyter").code == 0
    r = bai("apps", "work3")
    assert r.code == 0, r.err
    lines = [line.split() for line in r.out.strip().splitlines()]
    assert lines[0] == ["APP", "PROTOCOL", "PORTS", "RUNNING", "URL"]
    assert ["ttyd", "http", "7681", "no"] in lines
    assert ["jupyter", "http", "8080", "yes", "http://127.0.0.1:10205/"] in lines
    assert bai("app", "work3", "jupyter", "--stop").code == 0
    assert "yes" not in bai("apps", "work3").out


def test_unknown_apps_and_sessions_are_clear_errors(bai: Bai) -> None:
    created(bai, "python:3.12", "--name", "work4")
    r = bai("app", "work4", "vscode")
    assert r.code == 4 and "vscode" in r.err
    r = bai("app", "nobody", "ttyd")
    assert r.code == 4 and "nobody" in r.err
    r = bai("app", "work4", "ttyd", "--env", "oops")
    assert r.code == 2 and "--env expects KEY=VALUE" in r.err
