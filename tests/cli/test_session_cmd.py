"""`bai session ...` and `bai run` against the fake SessionService: output, requests, exit codes."""

from __future__ import annotations

import json
import threading
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import grpc
import pytest

from bai.api.common.v1 import execution_pb2
from bai.api.common.v1 import session_pb2 as common
from bai.api.manager.v1 import session_pb2
from bai.cli.main import main
from tests.cli.conftest import Result, keypair_env, run_bai
from tests.cli.fake_session_service import SessionServer
from tests.cli.terminal import Terminal


@dataclass
class Bai:
    """Runs ``bai`` in-process against the fake session service."""

    server: SessionServer
    capsys: pytest.CaptureFixture[str]

    def __call__(self, *argv: str) -> Result:
        return run_bai(self.capsys, list(argv))

    def requests(self, method: str) -> list[object]:
        return [c.request for c in self.server.fake.calls_to(method)]

    def session(self, name: str) -> session_pb2.Session:
        return next(s for s in self.server.state.sessions.values() if s.name == name)


@pytest.fixture
def bai(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> Iterator[Bai]:
    keypair_env(monkeypatch, tmp_path / "config")
    with SessionServer() as server:
        monkeypatch.setenv("BAI_ENDPOINT", server.address)
        yield Bai(server, capsys)


def created(bai: Bai, *argv: str) -> session_pb2.Session:
    r = bai("session", "create", *argv)
    assert r.code == 0, r.err
    return bai.session(r.out.split("name", 1)[1].split()[0])


def test_create_prints_each_transition_then_the_session(bai: Bai) -> None:
    r = bai(
        "session", "create", "python:3.12", "--name", "sess1", "-c", "2", "-m", "1.5g",
        "--gpu", "1", "--fgpu", "0.5", "--slot", "tpu=1", "-e", "A=1", "--tag", "t",
        "--priority", "5", "--batch-timeout", "1m30s", "--request-id", "r-1",
    )  # fmt: skip
    assert r.code == 0, r.err
    s = bai.session("sess1")
    assert r.err.splitlines() == [
        f"session sess1 ({s.id}): pending",
        "session sess1: scheduled",
        "session sess1: preparing",
        "session sess1: creating",
        "session sess1: running",
    ]
    assert r.out.splitlines() == [f"id      {s.id}", "name    sess1", "status  running"]
    (request,) = bai.requests("CreateSession")
    assert isinstance(request, session_pb2.CreateSessionRequest)
    assert dict(request.resource_slots.slots) == {
        "cpu": "2",
        "mem": "1610612736",
        "cuda.device": "1",
        "cuda.shares": "0.5",
        "tpu": "1",
    }
    assert request.enqueue_only and request.priority == 5 and request.request_id == "r-1"
    assert dict(request.environ) == {"A": "1"} and request.tag == "t"
    assert request.batch_timeout.ToSeconds() == 90


def test_progress_falls_back_to_polling_without_events(
    bai: Bai, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr("bai.cli.progress.POLL_AFTER", 0.01)
    bai.server.fake.inject("WatchEvents", grpc.StatusCode.UNIMPLEMENTED)
    bai.server.state.start_on_get = True
    r = bai("session", "create", "python:3.12", "--name", "poll1")
    assert r.code == 0 and r.err.splitlines()[1:] == ["session poll1: running"]


def test_create_enqueue_only_returns_at_once(bai: Bai) -> None:
    r = bai("session", "create", "python:3.12", "--enqueue-only", "--json")
    assert r.code == 0 and r.err == ""
    assert r.json()["status"] == "SESSION_STATUS_PENDING"
    assert bai.requests("WatchEvents") == []


def test_a_session_that_never_runs_is_an_error(bai: Bai) -> None:
    r = bai("session", "create", "broken", "--name", "sess-b")
    assert r.code == 1
    assert "session sess-b: cancelled (image-pull-failed: image pull failed)" in r.err
    assert r.err.endswith(
        "error: session sess-b ended cancelled (image-pull-failed: image pull failed)\n"
    )
    assert "status  cancelled" in r.out


def test_max_wait_leaves_the_session_queued(bai: Bai) -> None:
    r = bai("session", "create", "stuck", "--name", "queue1", "--max-wait", "0.2s")
    assert r.code == 0, r.err
    assert "still pending after --max-wait 0.2s; the session was left as it is" in r.err
    assert bai.session("queue1").status == common.SESSION_STATUS_PENDING


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        (["-m", "lots"], "error: --mem: 'lots' is not a size (e.g. 512m, 1g, 1.5g)"),
        (["--batch-timeout", "3x"], "error: --batch-timeout: '3x' is not a duration"),
        (["--max-wait", ""], "error: --max-wait: '' is not a duration"),
        (["--slot", "cpu"], "error: --slot expects SLOT=VALUE, got 'cpu'"),
        (["-c", "many"], "error: --cpu: 'many' is not a number"),
        (["-e", "=x"], "error: --env expects KEY=VALUE, got '=x'"),
        (["--type", "batch"], "error: --type batch needs --startup-command"),
        (["--mount", ":ro"], "error: --mount expects FOLDER[:PATH][:ro|rw|wd], got ':ro'"),
        (["-v", "a:b:c:ro"], "error: --mount expects FOLDER[:PATH][:ro|rw|wd]"),
    ],
)
def test_bad_create_options_are_usage_errors(bai: Bai, argv: list[str], message: str) -> None:
    r = bai("session", "create", "python:3.12", *argv)
    assert r.code == 2 and r.err.startswith(message), r.err
    assert r.err.count("\n") == 1 and bai.requests("CreateSession") == []


def test_mount_options_name_folders_paths_and_permissions(bai: Bai) -> None:
    folder_id = "0b0c7d59-4d84-4b38-9f56-2a8fbb5e3b10"
    r = bai(
        "session", "create", "python:3.12", "--enqueue-only",
        "--mount", "data", "-v", "refs:ro", "--mount", f"{folder_id}:/data/in:rw",
    )  # fmt: skip
    assert r.code == 0, r.err
    (request,) = bai.requests("CreateSession")
    assert isinstance(request, session_pb2.CreateSessionRequest)
    assert [(m.vfolder_name, m.vfolder_id, m.mount_path, m.permission) for m in request.mounts] == [
        ("data", "", "", 0),
        ("refs", "", "", 1),
        ("", folder_id, "/data/in", 2),
    ]


def test_server_errors_keep_their_exit_codes(bai: Bai) -> None:
    r = bai("session", "create", "missing")
    assert (r.code, r.err) == (4, "error: NOT_FOUND (IMAGE_NOT_FOUND): no such image\n")
    r = bai("session", "create", "python:3.12", "--name", "ab")
    assert r.code == 2 and "(INVALID_FIELD)" in r.err and "name: must be 4-64" in r.err
    created(bai, "python:3.12", "--name", "dup1")
    assert bai("session", "create", "python:3.12", "--name", "dup1").code == 5
    r = bai("session", "restart", "ghost")
    assert (r.code, r.err) == (4, "error: NOT_FOUND: no live session named 'ghost'\n")


def test_ls_shows_live_sessions_unless_asked(bai: Bai) -> None:
    created(bai, "python:3.12", "--name", "run1")
    created(bai, "stuck", "--name", "wait1", "--enqueue-only")
    gone = created(bai, "python:3.12", "--name", "gone1")
    assert bai("session", "rm", "gone1").code == 0
    r = bai("session", "ls")
    lines = r.out.splitlines()
    assert lines[0].split()[:4] == ["ID", "NAME", "STATUS", "TYPE"]
    assert [line.split()[1:3] for line in lines[1:]] == [["wait1", "pending"], ["run1", "running"]]
    listed = bai("session", "ls", "--all", "--json").json()
    assert [s["name"] for s in listed] == ["gone1", "wait1", "run1"]
    assert listed[0]["id"] == gone.id and listed[0]["status"] == "SESSION_STATUS_TERMINATED"
    r = bai("session", "ps", "--status", "running,terminated")
    assert [line.split()[1] for line in r.out.splitlines()[1:]] == ["gone1", "run1"]
    r = bai("session", "ls", "--status", "sleeping")
    assert r.code == 2 and r.err.startswith("error: --status: unknown sleeping (one of: pending")
    assert bai("session", "ls", "--status", "running", "--all").code == 2


def test_info_explains_why_a_session_waits(bai: Bai) -> None:
    created(bai, "stuck", "--name", "wait1", "--enqueue-only")
    r = bai("session", "info", "wait1")
    assert r.code == 0, r.err
    assert (
        "waiting because: no agent has 4 cuda.device free "
        "(agent-resources; cuda.device requested 4, available 0)"
    ) in r.out.splitlines()
    s = created(bai, "python:3.12", "--name", "run1")
    r = bai("session", "info", s.id)
    assert "waiting because" not in r.out
    assert f"{s.kernels[0].id}  main  running" in r.out
    history = r.out.split("TIME", 1)[1].splitlines()[1:]
    assert [line.split()[1] for line in history] == [
        "pending", "scheduled", "preparing", "creating", "running",
    ]  # fmt: skip
    assert bai("session", "info", "run1", "--json").json()["kernels"][0]["cluster_role"] == "main"


def test_rm_goes_on_after_a_failure_and_reports_it(bai: Bai) -> None:
    a = created(bai, "python:3.12", "--name", "sess-a")
    b = created(bai, "stuck", "--name", "sess-b", "--enqueue-only")
    r = bai("session", "rm", "sess-a", "ghost", b.id, "--forced")
    assert r.code == 4
    assert r.out.splitlines() == [
        f"destroyed session sess-a ({a.id}): terminated",
        f"destroyed session sess-b ({b.id}): cancelled",
    ]
    assert r.err == "error: ghost: NOT_FOUND: no live session named 'ghost'\n"
    destroys = bai.requests("DestroySession")
    assert all(getattr(d, "forced", False) for d in destroys)
    created(bai, "python:3.12", "--name", "base", "--tag", "in-use")
    r = bai("session", "rm", "base")
    assert r.code == 5 and "(IN_USE)" in r.err
    assert bai("session", "rm", "base", "--recursive", "--json").json()[0]["name"] == "base"


def test_restart(bai: Bai) -> None:
    s = created(bai, "python:3.12", "--name", "rest1")
    r = bai("session", "restart", "rest1")
    assert (r.code, r.out) == (0, f"restarted session rest1 ({s.id}): running\n")
    created(bai, "stuck", "--name", "pend1", "--enqueue-only")
    r = bai("session", "restart", "pend1")
    assert r.code == 5 and "(SESSION_NOT_READY)" in r.err


def test_rename_and_interrupt(bai: Bai) -> None:
    s = created(bai, "python:3.12", "--name", "old-name")
    r = bai("session", "rename", "old-name", "new-name")
    assert (r.code, r.out) == (0, f"renamed session old-name to new-name ({s.id})\n")
    assert bai.requests("RenameSession")[-1] == session_pb2.RenameSessionRequest(
        session_id=s.id, new_name="new-name"
    )
    r = bai("session", "rename", "new-name", "x")
    assert r.code == 2 and "(INVALID_FIELD)" in r.err
    r = bai("session", "interrupt", "new-name")
    assert (r.code, r.out) == (0, "interrupted the runs of session new-name\n")
    assert bai.requests("InterruptSession")[-1] == session_pb2.InterruptSessionRequest(
        session_id=s.id
    )
    created(bai, "stuck", "--name", "pend2", "--enqueue-only")
    r = bai("session", "interrupt", "pend2")
    assert r.code == 5 and "(SESSION_NOT_READY)" in r.err


def test_logs_tail_and_follow(bai: Bai) -> None:
    s = created(bai, "python:3.12", "--name", "logs1")
    assert bai("session", "logs", "logs1").out == "booting\nready\n"
    assert bai("session", "logs", "logs1", "--tail", "1").out == "ready\n"
    entries = [json.loads(line) for line in bai("session", "logs", s.id, "--json").out.split()]
    assert [e["kernel_id"] for e in entries] == [s.kernels[0].id] * 2
    state = bai.server.state

    def later() -> None:
        state.following.wait()
        with state.cond:
            state.logs[s.id].append(b"more\n")
        state.set_status(s, common.SESSION_STATUS_TERMINATED)

    helper = threading.Thread(target=later)
    helper.start()
    r = bai("session", "logs", "logs1", "-f")
    helper.join()
    assert r.code == 0 and r.out.startswith("booting\nready\nmore\n")
    assert bai("session", "logs", "logs1", "--tail", "-1").code == 2


def test_events_print_cursors_and_resume_from_one(bai: Bai) -> None:
    s = created(bai, "python:3.12", "--name", "evts1")
    bai("session", "rm", s.id)
    r = bai("session", "events", s.id, "--cursor", "c2")
    assert r.code == 0, r.err
    lines = r.out.splitlines()
    assert [line.split()[0] for line in lines] == ["c3", "c4", "c5", "c6", "c7"]
    assert lines[-1].split()[2:] == ["session-terminated", "evts1", "terminated", "user-requested"]
    assert bai.requests("WatchEvents")[-1].cursor == "c2"  # type: ignore[attr-defined]
    ndjson = [
        json.loads(x)
        for x in bai("session", "events", s.id, "--cursor", "c6", "--json").out.split("\n")
        if x
    ]
    assert [e["cursor"] for e in ndjson] == ["c7"]
    r = bai("session", "events", s.id, "--cursor", "old")
    assert r.code == 2 and "(CURSOR_EXPIRED)" in r.err


def test_stats_tables_and_ndjson(bai: Bai) -> None:
    s = created(bai, "python:3.12", "--name", "stat1")
    r = bai("session", "stats", "stat1", "--interval", "1s")
    assert r.code == 0, r.err
    blocks = r.out.split("\n\n")
    assert len(blocks) == 2 and blocks[1].startswith("time: 2023-11-14T22:13:22Z")
    row = blocks[1].splitlines()[2].split()
    assert row[:4] == [s.kernels[0].id, "25.0", "512m/1g", "2k/0"]
    samples = [json.loads(x) for x in bai("session", "stats", s.id, "--json").out.split()]
    assert [x["kernels"][0]["cpu_util_percent"] for x in samples] == [12.5, 25.0]
    assert bai.requests("WatchStats")[0].interval.ToSeconds() == 1  # type: ignore[attr-defined]
    r = bai("session", "stats", "stat1", "--interval", "0.5s")
    assert r.code == 2 and "(INVALID_FIELD)" in r.err
    assert bai("session", "stats", "stat1", "--interval", "soon").code == 2


def test_exec_streams_output_in_order_and_exits_with_the_run(
    bai: Bai, monkeypatch: pytest.MonkeyPatch
) -> None:
    s = created(bai, "python:3.12", "--name", "exec1")
    terminal = Terminal()
    terminal.install(monkeypatch)
    code = main(["session", "exec", "exec1", "out one; err two; out three; exit 3"])
    assert code == 3
    assert terminal.writes == [("out", "one\n"), ("err", "two\n"), ("out", "three\n")]
    start = bai.server.state.inputs[0]
    assert start.session_id == s.id and start.start.mode == execution_pb2.EXECUTION_MODE_QUERY


def test_exec_forwards_stdin_when_the_program_waits(
    bai: Bai, monkeypatch: pytest.MonkeyPatch
) -> None:
    created(bai, "python:3.12", "--name", "exec1")
    terminal = Terminal(stdin="world\n")
    terminal.install(monkeypatch)
    code = main(["session", "exec", "exec1", "out before; ask Name? ; out after; ask Again? "])
    assert code == 0
    # Output came out while the run was still going, before stdin was read.
    assert terminal.stdout_at_read == ["before\nName?", "before\nName?got world\nafter\nAgain?"]
    assert terminal.text("out").endswith("Again?got EOF\n")
    sent = [r.stdin for r in bai.server.state.inputs if r.HasField("stdin")]
    assert [(x.data, x.eof) for x in sent] == [(b"world\n", False), (b"", True)]


def test_exec_batch_mode_timeout_and_failures(bai: Bai) -> None:
    created(bai, "python:3.12", "--name", "exec1")
    r = bai("session", "exec", "exec1", "-c", "out hi", "--timeout", "30s")
    assert (r.code, r.out) == (0, "hi\n")
    spec = bai.server.state.inputs[0].start
    assert spec.mode == execution_pb2.EXECUTION_MODE_BATCH and spec.timeout.ToSeconds() == 30
    r = bai("session", "exec", "exec1", "fail kernel died")
    assert (r.code, r.err) == (1, "error: the run failed: kernel died\n")
    r = bai("session", "exec", "exec1", "out {}", "--json")
    kinds = [next(iter(json.loads(line))) for line in r.out.splitlines()]
    assert kinds == ["started", "output", "result"]
    assert bai("session", "exec", "exec1", "code", "-c", "cmd").code == 2
    assert bai("session", "exec", "exec1", "out x", "--timeout", "later").code == 2
    created(bai, "stuck", "--name", "pend1", "--enqueue-only")
    r = bai("session", "exec", "pend1", "out x")
    assert r.code == 5 and "(SESSION_NOT_READY)" in r.err


def test_exec_takes_code_after_options(bai: Bai) -> None:
    created(bai, "python:3.12", "--name", "exec1")
    r = bai("session", "exec", "exec1", "--mode", "batch", "out late")
    assert (r.code, r.out) == (0, "late\n")
    assert bai.server.state.inputs[0].start.mode == execution_pb2.EXECUTION_MODE_BATCH


def test_ctrl_c_interrupts_the_run(bai: Bai) -> None:
    created(bai, "python:3.12", "--name", "exec1")
    r = bai("session", "exec", "exec1", "out started; sigint")
    assert r.code == 130 and r.out == "started\n"
    assert "interrupting the run" in r.err and "the run was interrupted" in r.err
    assert any(x.HasField("interrupt") for x in bai.server.state.inputs)


def test_run_creates_executes_and_destroys(bai: Bai) -> None:
    r = bai("run", "python:3.12", "out hello; err warn; exit 2", "--name", "once", "-m", "1g")
    assert r.code == 2 and r.out == "hello\n"
    s = bai.session("once")
    assert r.err.startswith(f"session once ({s.id}): pending\n")
    assert "session once: running\nwarn\n" in r.err and r.err.endswith("destroyed session once\n")
    assert s.status == common.SESSION_STATUS_TERMINATED
    assert bai.requests("CreateSession")[0].resource_slots.slots["mem"] == str(1 << 30)  # type: ignore[attr-defined]
    r = bai("run", "python:3.12", "out kept", "--mode", "batch", "--keep", "--name", "keep1")
    assert r.code == 0 and f"kept session keep1 ({bai.session('keep1').id})" in r.err
    assert bai.session("keep1").status == common.SESSION_STATUS_RUNNING
    assert bai.server.state.inputs[-1].start.mode == execution_pb2.EXECUTION_MODE_BATCH


def test_run_that_cannot_start_or_is_interrupted_cleans_up(bai: Bai) -> None:
    r = bai("run", "broken", "out x", "--name", "sess-b")
    assert r.code == 1 and "error: session sess-b ended cancelled" in r.err
    assert r.err.endswith("destroyed session sess-b\n") and r.out == ""
    r = bai("run", "stuck", "out x", "--name", "queue1", "--max-wait", "0.1s")
    assert r.code == 6 and "error: session queue1 did not start within --max-wait" in r.err
    assert bai.session("queue1").status == common.SESSION_STATUS_CANCELLED
    r = bai("run", "python:3.12", "sigint", "--name", "intr1")
    assert r.code == 130 and bai.session("intr1").status == common.SESSION_STATUS_TERMINATED


def test_help_texts(bai: Bai) -> None:
    r = bai("--help")
    assert "session" in r.out and "run code in a new session" in r.out
    r = bai("session", "--help")
    assert r.code == 0
    for word in ("create", "ls", "info", "rm", "restart", "logs", "events", "stats", "exec"):
        assert word in r.out
    r = bai("run", "--help")
    assert "--keep" in r.out and "--max-wait" in r.out and "DURATION" in r.out
    r = bai("session", "exec", "--help")
    assert "limit for the run" in r.out and "per-call timeout" not in r.out
    assert "per-call timeout" in bai("session", "ls", "--help").out


def test_without_credentials_is_an_auth_error(bai: Bai, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("BAI_ACCESS_KEY")
    r = bai("session", "ls")
    assert r.code == 3 and r.err.startswith("error: no credentials")
