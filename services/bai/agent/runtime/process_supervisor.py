"""The supervisor of one process-runtime sandbox:
`python -m bai.agent.runtime.process_supervisor <sandbox dir>`.

The runtime starts it in a new session; it forks once more (so the runtime can
reap its direct child at once) and the grandchild lives on without the agent, so
that a restarted agent finds its sandboxes still running. It:
  1. records its own pid (supervisor.json),
  2. starts bwrap in a child that first joins the sandbox's cgroups (so every
     sandbox process is limited and counted, but the supervisor is not),
  3. records the sandbox pid bwrap reports on --json-status-fd (started.json),
  4. writes stdout/stderr lines with a timestamp and stream tag to log.jsonl,
  5. records the command's exit code (exit.json) after the last output line.
It imports nothing beyond the standard library and bai's state-file helpers.
"""

from __future__ import annotations

import asyncio
import json
import os
import selectors
import signal
import subprocess
import sys
from pathlib import Path
from typing import BinaryIO, Literal

from bai.agent.runtime.process_state import (
    SandboxDir,
    encode_log_line,
    now,
    process_start_time,
)

# Longer lines are split (as Docker's json-file driver does at 16 KiB).
MAX_LINE_BYTES = 16 * 1024


class LineWriter:
    """Splits one stream's bytes into lines and appends them to the log."""

    def __init__(self, stream: Literal["stdout", "stderr"], log: BinaryIO) -> None:
        self.stream: Literal["stdout", "stderr"] = stream
        self.log = log
        self.pending = b""
        self.last_line = b""

    def feed(self, data: bytes) -> None:
        self.pending += data
        while True:
            newline = self.pending.find(b"\n")
            if newline < 0 and len(self.pending) < MAX_LINE_BYTES:
                break
            cut = newline + 1 if 0 <= newline < MAX_LINE_BYTES else MAX_LINE_BYTES
            self._emit(self.pending[:cut])
            self.pending = self.pending[cut:]
        self.log.flush()

    def close(self) -> None:
        if self.pending:
            self._emit(self.pending)
            self.pending = b""
        self.log.flush()

    def _emit(self, data: bytes) -> None:
        self.last_line = data
        self.log.write(encode_log_line(self.stream, now(), data))


def _join_cgroups(procs_files: list[str]) -> None:
    for procs in procs_files:
        with open(procs, "w") as f:
            f.write(str(os.getpid()))


def _enter(procs_files: list[str], cpus: list[int]) -> None:
    """In bwrap's process before exec: join the cgroups and, when pinned, bind to the
    cores (an affinity every process of the sandbox inherits)."""
    _join_cgroups(procs_files)
    if cpus:
        os.sched_setaffinity(0, cpus)


def supervise(sandbox: SandboxDir) -> int:
    launch = sandbox.read_json(sandbox.launch_file)
    if launch is None:
        raise SystemExit(f"no launch file in {sandbox.path}")
    status_read, status_write = os.pipe()
    procs_files: list[str] = launch["cgroup_procs"]
    cpus: list[int] = launch.get("cpus", [])
    proc = subprocess.Popen(
        [launch["bwrap"], "--json-status-fd", str(status_write), *launch["args"]],
        stdin=subprocess.DEVNULL,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        pass_fds=(status_write,),
        preexec_fn=lambda: _enter(procs_files, cpus),
        cwd="/",
    )
    os.close(status_write)
    assert proc.stdout is not None and proc.stderr is not None
    exit_code: int | None = None
    status_buffer = b""
    with open(sandbox.log_file, "ab") as log:
        writers = {
            proc.stdout.fileno(): LineWriter("stdout", log),
            proc.stderr.fileno(): LineWriter("stderr", log),
        }
        selector = selectors.DefaultSelector()
        for fd in (*writers, status_read):
            selector.register(fd, selectors.EVENT_READ)
        open_fds = len(writers) + 1
        while open_fds:
            for key, _ in selector.select():
                fd = key.fd
                data = os.read(fd, 65536)
                if not data:
                    selector.unregister(fd)
                    open_fds -= 1
                    if fd in writers:
                        writers[fd].close()
                    continue
                if fd in writers:
                    writers[fd].feed(data)
                    continue
                # bwrap writes one JSON object per line on the status fd.
                status_buffer += data
                *documents, status_buffer = status_buffer.split(b"\n")
                for document in documents:
                    exit_code = _record_status(sandbox, document, exit_code)
    returncode = proc.wait()
    result: dict[str, object] = {"finished_at": now().isoformat()}
    if exit_code is None:
        # bwrap reports no exit code when it failed itself (a mount, or exec of the
        # command) or was killed; its last stderr line says why.
        exit_code = 128 - returncode if returncode < 0 else returncode
        last = writers[proc.stderr.fileno()].last_line.decode(errors="replace").strip()
        result["error"] = last if last.startswith("bwrap:") else f"bwrap ended with {returncode}"
    result["exit_code"] = exit_code
    sandbox.write_json(sandbox.exit_file, result)
    return 0


def _record_status(sandbox: SandboxDir, document: bytes, exit_code: int | None) -> int | None:
    if not document.strip():
        return exit_code
    status = json.loads(document)
    if "child-pid" in status:
        pid = int(status["child-pid"])
        sandbox.write_json(
            sandbox.started_file,
            {"pid": pid, "start_time": process_start_time(pid), "started_at": now().isoformat()},
        )
    if "exit-code" in status:
        return int(status["exit-code"])
    return exit_code


async def spawn_supervisor(sandbox: SandboxDir) -> str | None:
    """Start the supervisor of `sandbox` (its launch.json written) in a new session,
    detached from the caller. None when it started, else why not: the spawning
    process's exit status or signal and what it wrote to stderr."""
    # From a worker thread with subprocess (vfork, then exec), never with the event
    # loop's subprocess support: uvloop spawns with fork(), which runs gRPC's at-fork
    # handlers (grpcio turns fork support on) in the child, and while gRPC threads are
    # busy those crash it (SIGSEGV) in a few percent of spawns.
    return await asyncio.to_thread(_spawn, sandbox)


def _spawn(sandbox: SandboxDir) -> str | None:
    # The direct child forks the supervisor and exits at once; the supervisor lets go
    # of the stderr pipe (its output goes to supervisor.log), so this returns then.
    done = subprocess.run(
        [sys.executable, "-m", "bai.agent.runtime.process_supervisor", str(sandbox.path)],
        stdin=subprocess.DEVNULL,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        start_new_session=True,
        cwd="/",
        check=False,
    )
    if done.returncode == 0:
        return None
    return f"{exit_description(done.returncode)}: {done.stderr.decode(errors='replace').strip()}"


def exit_description(returncode: int) -> str:
    """'exit status N', or 'killed by SIGNAME' for a negative (signal) return code."""
    if returncode >= 0:
        return f"exit status {returncode}"
    try:
        return f"killed by {signal.Signals(-returncode).name}"
    except ValueError:
        return f"killed by signal {-returncode}"


def main(argv: list[str]) -> int:
    sandbox = SandboxDir(Path(argv[1]))
    log = os.open(sandbox.supervisor_log, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o644)
    child = os.fork()
    if child:
        # The runtime waits for this process; the grandchild is the supervisor.
        sandbox.write_json(
            sandbox.supervisor_file, {"pid": child, "start_time": process_start_time(child)}
        )
        os._exit(0)
    # Off the runtime's stderr pipe, so that the runtime's wait ends with this fork.
    os.dup2(log, sys.stdout.fileno())
    os.dup2(log, sys.stderr.fileno())
    os.close(log)
    os.chdir("/")
    return supervise(sandbox)


if __name__ == "__main__":
    sys.exit(main(sys.argv))
