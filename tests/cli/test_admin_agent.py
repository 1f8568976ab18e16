"""`bai admin agent ...` against the fake AgentService: tables, --json, the requests each
command sends (filters, update masks), the stats stream, error lines and exit codes."""

from __future__ import annotations

import json
import re
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from google.protobuf import duration_pb2

from bai.api.manager.v1 import agent_pb2
from bai.cli.main import main
from tests.cli.conftest import Result, keypair_env, run_bai
from tests.cli.fake_agent_service import Fleet, agent_server

ALIVE, LOST = agent_pb2.AGENT_STATUS_ALIVE, agent_pb2.AGENT_STATUS_LOST
LIST_HEADER = [
    "ID", "STATUS", "SCHEDULABLE", "SCALING GROUP", "ADDRESS", "ARCH", "AVAILABLE", "OCCUPIED",
    "KERNELS", "VERSION", "LAST HEARTBEAT",
]  # fmt: skip
FIRST_SAMPLE = (
    "2023-11-14T22:13:20Z  cpu 250.0%  mem 3g/256g  net rx 1g tx 300m  disk 50g/200g"
    "  cuda:0 45% 3g/80g"
)


@dataclass
class ABai:
    """Runs ``bai`` in-process against the fake agent fleet."""

    fleet: Fleet
    capsys: pytest.CaptureFixture[str]

    def __call__(self, *argv: str) -> Result:
        return run_bai(self.capsys, ["admin", "agent", *argv])

    def requests(self, method: str) -> list[Any]:
        return [c.request for c in self.fleet.fake.calls_to(method)]


@pytest.fixture
def abai(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> Iterator[ABai]:
    keypair_env(monkeypatch, tmp_path / "config")
    with agent_server() as fleet:
        monkeypatch.setenv("BAI_ENDPOINT", fleet.fake.address)
        yield ABai(fleet, capsys)


def test_help_names_every_command(abai: ABai, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["admin", "--help"]) == 0
    assert "agent nodes: list, inspect, drain, move, watch" in capsys.readouterr().out
    r = abai("--help")
    assert r.code == 0
    for command in ("ls", "info", "update", "stats"):
        assert command in r.out
        sub = abai(command, "--help")
        assert sub.code == 0 and "usage: bai admin agent " + command in sub.out


def test_ls_table(abai: ABai) -> None:
    r = abai("ls")
    assert r.code == 0, r.err
    header, *lines = r.out.splitlines()
    assert re.split(r"\s{2,}", header) == LIST_HEADER
    rows = [line.split() for line in lines]
    assert rows == [
        [
            "i-gpu01", "alive", "yes", "gpu", "10.0.0.5:6011", "x86_64",
            "cpu=32,cuda.device=4,mem=256g", "cpu=4,cuda.device=1,mem=16g", "2", "26.1.0",
            "2023-11-14T22:13:20Z",
        ],
        [
            "i-node01", "alive", "yes", "default", "10.0.0.6:6011", "x86_64",
            "cpu=8,mem=32g", "-", "0", "26.1.0", "2023-11-14T22:13:20Z",
        ],
        [
            "i-node02", "lost", "no", "default", "10.0.0.7:6011", "x86_64",
            "cpu=8,mem=32g", "-", "0", "26.0.3", "2023-11-14T22:13:20Z",
        ],
    ]  # fmt: skip
    (request,) = abai.requests("ListAgents")
    assert request == agent_pb2.ListAgentsRequest()


def test_ls_json_and_paging(abai: ABai) -> None:
    listed = abai("ls", "--json", "--page-size", "2").json()
    assert [a["id"] for a in listed] == ["i-gpu01", "i-node01", "i-node02"]
    assert listed[0]["available_slots"]["slots"]["mem"] == str(256 << 30)
    assert listed[2]["status"] == "AGENT_STATUS_LOST" and listed[2]["schedulable"] is False
    assert [r.page_token for r in abai.requests("ListAgents")] == ["", "2"]
    assert [a["id"] for a in abai("ls", "--json", "--limit", "1").json()] == ["i-gpu01"]


def test_ls_filters_reach_the_request(abai: ABai) -> None:
    r = abai(
        "ls", "--status", "ALIVE", "--status", "lost", "--scaling-group", "default",
        "--unschedulable", "--arch", "x86_64",
    )  # fmt: skip
    assert r.code == 0, r.err
    (request,) = abai.requests("ListAgents")
    assert request == agent_pb2.ListAgentsRequest(
        statuses=[ALIVE, LOST], scaling_group="default", schedulable=False, architecture="x86_64"
    )
    assert [line.split()[0] for line in r.out.splitlines()[1:]] == ["i-node02"]
    r = abai("ls", "--schedulable", "--scaling-group", "default")
    assert [line.split()[0] for line in r.out.splitlines()[1:]] == ["i-node01"]
    assert abai.requests("ListAgents")[-1].schedulable is True
    r = abai("ls", "--status", "sleeping")
    assert r.code == 2 and "invalid choice" in r.err


def test_info(abai: ABai) -> None:
    r = abai("info", "i-gpu01")
    assert r.code == 0, r.err
    block, *tables = r.out.split("\n\n")
    rows = dict(line.split(None, 1) for line in block.splitlines())
    assert rows["status"] == "alive" and rows["scaling_group"] == "gpu"
    assert rows["kernels"] == "2" and rows["auto_terminate_abusing_kernel"] == "yes"
    assert rows["lost_at"] == "-" and rows["hostname"] == "gpu01"
    assert rows["cpu"] == "AMD EPYC 9354 (32 cores)" and rows["memory"] == "256g"
    assert rows["container_runtime"] == "docker 26.1.5" and rows["os"] == "Debian GNU/Linux 13"
    assert [line.split() for line in tables[0].splitlines()] == [
        ["SLOT", "TYPE", "UNIT", "AVAILABLE", "OCCUPIED"],
        ["cpu", "count", "Core", "32", "4"],
        ["cuda.device", "count", "GPU", "4", "1"],
        ["mem", "bytes", "GiB", "256g", "16g"],
    ]
    plugins = tables[1].splitlines()
    assert plugins[0].split() == ["PLUGIN", "VERSION", "STATUS", "SLOTS", "METADATA", "MESSAGE"]
    assert plugins[3].split(None, 5) == [
        "cuda", "0.9", "degraded", "cuda.device", "cuda_version=12.8,driver_version=570.86",
        "GPU 3 fell off the bus",
    ]  # fmt: skip
    devices = tables[2].splitlines()
    assert len(devices) == 5 and devices[4].split() == [
        "cuda", "3", "NVIDIA", "H100", "80g", "1", "0000:13:00.0",
    ]  # fmt: skip
    assert abai.requests("GetAgent") == [agent_pb2.GetAgentRequest(agent_id="i-gpu01")]

    data = abai("info", "i-node02", "--json").json()
    assert data["id"] == "i-node02" and data["lost_at"] == "2023-11-14T22:14:20Z"
    assert abai("info", "i-gpu01", "--json").json()["hardware"]["cpu_cores"] == 32


def test_update_sends_only_the_given_fields(abai: ABai) -> None:
    r = abai("update", "i-node01", "--unschedulable", "--scaling-group", "gpu")
    assert r.code == 0, r.err
    (request,) = abai.requests("UpdateAgent")
    assert list(request.update_mask.paths) == ["schedulable", "scaling_group"]
    assert request.agent == agent_pb2.Agent(id="i-node01", schedulable=False, scaling_group="gpu")
    rows = dict(line.split(None, 1) for line in r.out.splitlines())
    assert rows["schedulable"] == "no" and rows["scaling_group"] == "gpu"
    agent = abai.fleet.agents["i-node01"]
    assert (agent.schedulable, agent.scaling_group) == (False, "gpu")

    data = abai("update", "i-node01", "--schedulable", "--json").json()
    assert data["schedulable"] is True and data["scaling_group"] == "gpu"
    request = abai.requests("UpdateAgent")[-1]
    assert list(request.update_mask.paths) == ["schedulable"] and request.agent.schedulable
    r = abai("update", "i-gpu01", "--no-auto-terminate-abusing-kernel")
    assert r.code == 0, r.err
    assert list(abai.requests("UpdateAgent")[-1].update_mask.paths) == [
        "auto_terminate_abusing_kernel"
    ]
    assert not abai.fleet.agents["i-gpu01"].auto_terminate_abusing_kernel


def test_update_refusals(abai: ABai) -> None:
    r = abai("update", "i-node01")
    assert r.code == 2 and "nothing to update" in r.err
    r = abai("update", "i-node01", "--schedulable", "--unschedulable")
    assert r.code == 2 and "not allowed with argument" in r.err
    assert abai.requests("UpdateAgent") == []
    r = abai("update", "i-node01", "--scaling-group", "nowhere")
    assert r.code == 4
    assert r.err == (
        "error: NOT_FOUND (REFERENCE_NOT_FOUND): scaling group 'nowhere' does not exist\n"
    )
    assert abai.fleet.agents["i-node01"].scaling_group == "default"


def test_stats_prints_a_line_per_sample_until_the_stream_ends(abai: ABai) -> None:
    r = abai("stats", "i-gpu01")
    assert r.code == 0, r.err
    lines = r.out.splitlines()
    assert len(lines) == 3 and lines[0] == FIRST_SAMPLE
    # 5 MiB received and 1 MiB sent in the 5 s between samples.
    assert "cpu 251.0%" in lines[1] and "net rx 1g (1m/s) tx 301m (204.8k/s)" in lines[1]
    (request,) = abai.requests("WatchAgentStats")
    assert request.agent_id == "i-gpu01" and request.interval.seconds == 5
    assert not request.include_kernels


def test_stats_once_prints_the_first_sample_and_cancels(abai: ABai) -> None:
    abai.fleet.hold_open = True
    r = abai("stats", "i-gpu01", "--once", "--interval", "2s", "--kernels")
    assert r.code == 0, r.err
    assert r.out.splitlines() == [
        FIRST_SAMPLE,
        "  kernel k-1  cpu 99.5%  mem 1g/8g  net rx 10m tx 1m  io r 2m w 512k",
    ]
    # The stream would stay open; only the client's cancellation ends it.
    assert abai.fleet.ended.wait(timeout=10)
    (request,) = abai.requests("WatchAgentStats")
    assert request.include_kernels and request.interval.seconds == 2

    abai.fleet.ended.clear()
    r = abai("stats", "i-gpu01", "--once", "--json")
    assert r.code == 0, r.err
    (line,) = r.out.splitlines()
    sample = json.loads(line)
    assert sample["node"]["cpu_util_percent"] == 250.0 and sample["time"] == "2023-11-14T22:13:20Z"
    assert abai.fleet.ended.wait(timeout=10)


def test_stats_refusals(abai: ABai) -> None:
    r = abai("stats", "i-gpu01", "--interval", "500ms")
    assert r.code == 2 and "interval: must be at least 1 s" in r.err
    r = abai("stats", "i-gpu01", "--interval", "soon")
    assert r.code == 2 and "--interval" in r.err
    half_second = duration_pb2.Duration(nanos=500_000_000)
    # Only the first call reached the server; a bad --interval is refused before calling.
    assert abai.requests("WatchAgentStats") == [
        agent_pb2.WatchAgentStatsRequest(agent_id="i-gpu01", interval=half_second)
    ]
    r = abai("stats", "i-node02", "--once")
    assert r.code == 6 and r.out == ""
    assert r.err.startswith("error: UNAVAILABLE (AGENT_UNAVAILABLE): agent i-node02 is LOST")


def test_unknown_agent_gives_error_line_and_exit_code(abai: ABai) -> None:
    for argv in (["info", "i-nope"], ["update", "i-nope", "--unschedulable"], ["stats", "i-nope"]):
        r = abai(*argv)
        assert (r.code, r.out) == (4, ""), argv
        assert r.err == "error: NOT_FOUND: agent 'i-nope' not found\n"
