"""The kernel's own shell commands, run by the runner: the bootstrap script, an
interactive kernel's startup command and a batch session's command. Stdlib only,
python3.9-compatible; imported once the runner listens (subprocess is not cheap).
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import IO

from . import layout
from .batch_exec import existing_dir, exit_status, signal_group

REASON_FINISHED = "finished"
REASON_FAILED = "failed"
REASON_TIMEOUT = "timeout"
# Between SIGTERM and SIGKILL for a batch command past its timeout.
BATCH_KILL_GRACE_SECONDS = 2.0


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


def batch_session_then_exit(
    command: str,
    timeout: float,
    result_file: IO[bytes],
    work_dir: Path,
    close_server: Callable[[], None],
) -> None:
    """Run the batch command, then end the whole runner with its status."""
    code = run_batch_session(command, timeout, result_file, work_dir)
    close_server()
    for stream in (sys.__stdout__, sys.__stderr__):
        if stream is not None:
            stream.flush()
    # The main thread may be inside a query run; the kernel ends with its command.
    os._exit(code)
