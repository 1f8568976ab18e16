"""What the runner does for its kernel at start: bootstrap once (as root), become
the kernel's user, then either run the batch session's command to completion or
serve runs forever. Stdlib only, python3.9-compatible."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path
from typing import IO, Any

from . import layout
from .batch_exec import existing_dir, exit_status, signal_group
from .privileges import become, kernel_user
from .query_exec import QueryExecutor
from .server import RunnerServer

SESSION_BATCH = "batch"
REASON_FINISHED = "finished"
REASON_FAILED = "failed"
REASON_TIMEOUT = "timeout"
# Between SIGTERM and SIGKILL for a batch command past its timeout.
BATCH_KILL_GRACE_SECONDS = 2.0


def load_kernel_config(run_dir: Path) -> dict[str, Any]:
    path = run_dir / layout.KERNEL_CONFIG_FILE
    if not path.exists():
        return {}
    config = json.loads(path.read_text("utf-8"))
    if not isinstance(config, dict):
        raise ValueError(f"{path} is not a JSON object")
    return config


def run_bootstrap(script: str, run_dir: Path, work_dir: Path) -> None:
    """Run the bootstrap script once per kernel (not again when the sandbox restarts)."""
    marker = run_dir / layout.BOOTSTRAP_DONE_FILE
    if not script or marker.exists():
        return
    code = subprocess.call(["/bin/sh", "-c", script], cwd=existing_dir(work_dir))
    marker.write_text(str(code), "utf-8")
    if code != 0:
        print(f"bai-runner: bootstrap script exited with {code}", file=sys.stderr)


def start_background(command: str, work_dir: Path) -> None:
    """The interactive kernel's startup command: output to the sandbox's own logs."""
    process = subprocess.Popen(
        ["/bin/sh", "-c", command],
        stdin=subprocess.DEVNULL,
        cwd=existing_dir(work_dir),
        start_new_session=True,
    )
    # Reap it when it exits so that it does not linger as a zombie.
    threading.Thread(target=process.wait, daemon=True).start()


def run_batch_session(command: str, timeout: float, result_file: IO[bytes], work_dir: Path) -> int:
    """Run the command with the sandbox's stdout/stderr; record and return its status.

    `result_file` was opened before the runner left root (the run directory is the
    agent's); the agent reads it once the sandbox has exited.
    """
    started = time.monotonic()
    process = subprocess.Popen(
        ["/bin/sh", "-c", command],
        stdin=subprocess.DEVNULL,
        cwd=existing_dir(work_dir),
        start_new_session=True,
    )
    timed_out = False
    try:
        returncode = process.wait(timeout if timeout > 0 else None)
    except subprocess.TimeoutExpired:
        timed_out = True
        signal_group(process.pid, signal.SIGTERM)
        try:
            returncode = process.wait(BATCH_KILL_GRACE_SECONDS)
        except subprocess.TimeoutExpired:
            signal_group(process.pid, signal.SIGKILL)
            returncode = process.wait()
    code = exit_status(returncode)
    reason = REASON_TIMEOUT if timed_out else (REASON_FINISHED if code == 0 else REASON_FAILED)
    result = {
        "exit_code": code,
        "reason": reason,
        "elapsed_seconds": round(time.monotonic() - started, 3),
    }
    with result_file:
        result_file.write(json.dumps(result).encode("utf-8"))
    return code


def main(argv: list[str] | None = None) -> int:
    run_dir = layout.run_dir()
    work_dir = layout.work_dir()
    config = load_kernel_config(run_dir)
    user = kernel_user(config)
    run_bootstrap(str(config.get("bootstrap_script") or ""), run_dir, work_dir)
    executor = QueryExecutor(work_dir)
    server = RunnerServer(run_dir / layout.SOCKET_FILE, executor)
    # The run directory is the agent's: what the runner writes there, it opens as root.
    server.listen()
    batch = config.get("session_type") == SESSION_BATCH
    result_file = (run_dir / layout.BATCH_RESULT_FILE).open("wb") if batch else None
    become(user, work_dir)
    server.start()
    command = str(config.get("startup_command") or "")
    if result_file is not None:
        timeout = float(config.get("batch_timeout_seconds") or 0)
        args = (command, timeout, result_file, work_dir, server)
        threading.Thread(target=_batch_session_then_exit, args=args, daemon=True).start()
    elif command:
        start_background(command, work_dir)
    # The main thread executes query runs, in batch sessions too, until the process exits.
    executor.serve_forever()
    return 0


def _batch_session_then_exit(
    command: str, timeout: float, result_file: IO[bytes], work_dir: Path, server: RunnerServer
) -> None:
    code = run_batch_session(command, timeout, result_file, work_dir)
    server.close()
    for stream in (sys.__stdout__, sys.__stderr__):
        if stream is not None:
            stream.flush()
    # The main thread may be inside a query run; the kernel ends with its command.
    os._exit(code)
