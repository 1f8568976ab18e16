"""The on-disk state of one process-runtime sandbox, shared by the runtime and the
supervisor that runs the sandbox (`process_supervisor`).

`<state dir>/<sandbox id>/` holds:
    spec.json        the SandboxSpec, written at start (restart reuses it)
    launch.json      bwrap path and arguments, cgroup.procs files to join (runtime)
    supervisor.json  the supervisor's pid and start time (to tell a reused pid apart)
    started.json     the sandbox's pid and start time, once bwrap has created it
    exit.json        the command's exit code and end time, once it has exited
    log.jsonl        stdout/stderr: one {"t", "s", "d" | "b"} object per line
    supervisor.log   the supervisor's own stderr (for debugging a failed start)
Files are replaced atomically (write, then rename), so a reader never sees half.
"""

from __future__ import annotations

import base64
import dataclasses
import json
import os
from dataclasses import dataclass
from datetime import UTC, datetime
from decimal import Decimal
from pathlib import Path
from typing import Any, Literal, cast

from bai.agent.runtime.base import BindMount, LogLine, PortMapping, SandboxSpec


def now() -> datetime:
    return datetime.now(UTC)


def process_start_time(pid: int) -> int | None:
    """The pid's start time in clock ticks since boot (field 22 of /proc/<pid>/stat),
    or None when no such process exists."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return None
    # The command name (field 2) may contain spaces and parentheses: split after it.
    fields = stat[stat.rindex(")") + 2 :].split()
    return int(fields[19])


def process_alive(pid: int, start_time: int) -> bool:
    """True when `pid` still is the process that started at `start_time` (not a zombie)."""
    if process_start_time(pid) != start_time:
        return False
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return False
    return stat[stat.rindex(")") + 2 :].split()[0] != "Z"


def parent_pid(pid: int) -> int | None:
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return None
    return int(stat[stat.rindex(")") + 2 :].split()[1])


def spec_to_json(spec: SandboxSpec) -> dict[str, Any]:
    data = dataclasses.asdict(spec)
    data["cpu_limit"] = str(spec.cpu_limit)
    data["mounts"] = [
        {"source": str(m.source), "target": m.target, "read_only": m.read_only} for m in spec.mounts
    ]
    return data


def spec_from_json(data: dict[str, Any]) -> SandboxSpec:
    return SandboxSpec(
        **{
            **data,
            "cpu_limit": Decimal(data["cpu_limit"]),
            "mounts": [
                BindMount(Path(m["source"]), m["target"], m["read_only"]) for m in data["mounts"]
            ],
            "ports": [PortMapping(**p) for p in data["ports"]],
        }
    )


def record_time(record: dict[str, Any] | None, key: str) -> datetime | None:
    value = None if record is None else record.get(key)
    return datetime.fromisoformat(value) if isinstance(value, str) else None


def namespace_pid(pid: int) -> int | None:
    """The pid of `pid` inside its own (innermost) pid namespace."""
    try:
        status = Path(f"/proc/{pid}/status").read_text()
    except OSError:
        return None
    for line in status.splitlines():
        if line.startswith("NSpid:"):
            return int(line.split()[-1])
    return None


def encode_log_line(stream: Literal["stdout", "stderr"], time: datetime, data: bytes) -> bytes:
    """One log.jsonl record. Text stays readable; bytes that are not UTF-8 go in base64."""
    record: dict[str, str] = {"t": time.isoformat(), "s": stream}
    try:
        record["d"] = data.decode()
    except UnicodeDecodeError:
        record["b"] = base64.b64encode(data).decode()
    return json.dumps(record).encode() + b"\n"


def decode_log_line(line: bytes) -> LogLine | None:
    """The record on `line`, or None when it is not a complete record."""
    try:
        record = json.loads(line)
        data = (
            record["d"].encode() if "d" in record else base64.b64decode(record["b"], validate=True)
        )
        stream = record["s"]
        if stream not in ("stdout", "stderr"):
            return None
        return LogLine(stream=stream, time=datetime.fromisoformat(record["t"]), data=data)
    except (ValueError, KeyError, TypeError, AttributeError):
        return None


@dataclass(frozen=True)
class SandboxDir:
    path: Path

    @property
    def sandbox_id(self) -> str:
        return self.path.name

    @property
    def spec_file(self) -> Path:
        return self.path / "spec.json"

    @property
    def launch_file(self) -> Path:
        return self.path / "launch.json"

    @property
    def supervisor_file(self) -> Path:
        return self.path / "supervisor.json"

    @property
    def started_file(self) -> Path:
        return self.path / "started.json"

    @property
    def exit_file(self) -> Path:
        return self.path / "exit.json"

    @property
    def log_file(self) -> Path:
        return self.path / "log.jsonl"

    @property
    def supervisor_log(self) -> Path:
        return self.path / "supervisor.log"

    def write_json(self, file: Path, value: dict[str, Any]) -> None:
        tmp = file.with_name(f".{file.name}.{os.getpid()}.tmp")
        tmp.write_text(json.dumps(value))
        tmp.replace(file)

    def read_json(self, file: Path) -> dict[str, Any] | None:
        try:
            return cast(dict[str, Any], json.loads(file.read_text()))
        except (OSError, ValueError):
            return None

    def clear_run(self) -> None:
        """Forget the last run (before a restart); spec, launch and logs stay."""
        for file in (self.supervisor_file, self.started_file, self.exit_file):
            file.unlink(missing_ok=True)

    def supervisor_alive(self) -> bool:
        record = self.read_json(self.supervisor_file)
        if record is None or record.get("start_time") is None:
            return False
        return process_alive(int(record["pid"]), int(record["start_time"]))

    def supervisor_log_tail(self) -> str:
        try:
            return self.supervisor_log.read_text()[-2000:].strip()
        except OSError:
            return ""

    def main_pid(self, cgroup_pids: list[int]) -> int | None:
        """The command's pid among the sandbox's: bwrap's init (the started pid) forks it
        as pid 2 of the sandbox's pid namespace."""
        started = self.read_json(self.started_file)
        if started is None or started.get("start_time") is None:
            return None
        init_pid = int(started["pid"])
        if not process_alive(init_pid, int(started["start_time"])):
            return None
        for pid in cgroup_pids:
            if parent_pid(pid) == init_pid and namespace_pid(pid) == 2:
                return pid
        return None

    def command_execed(self, main_pid: int | None) -> bool:
        """True once the main pid runs another program than bwrap (set up, then exec'd)."""
        launch = self.read_json(self.launch_file)
        if main_pid is None or launch is None:
            return False
        try:
            program = os.stat(f"/proc/{main_pid}/exe")
            bwrap = os.stat(launch["bwrap"])
        except OSError:
            return False
        return (program.st_dev, program.st_ino) != (bwrap.st_dev, bwrap.st_ino)
