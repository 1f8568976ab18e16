"""Batch mode: shell commands run as child processes of the runner. Stdlib only,
python3.9-compatible.

Each command gets its own process group (`sh -c` and everything it starts), so
an interrupt is SIGINT to the whole group and a kill leaves nothing behind.
"""

from __future__ import annotations

import os
import queue
import signal
import subprocess
import threading
from pathlib import Path
from typing import IO

from . import protocol
from .run_context import OutputSnapshot, RunContext

READ_CHUNK = 65536
# After the shell exits, how long its output pipes may stay open (a background
# child holding them) before the run is reported without the rest.
PIPE_DRAIN_SECONDS = 2.0
# How often the stdin feeder looks whether its process has exited.
STDIN_POLL_SECONDS = 0.2


def exit_status(returncode: int) -> int:
    """A shell-style exit status: 128 + n for a process killed by signal n."""
    return 128 - returncode if returncode < 0 else returncode


def signal_group(pid: int, signum: int) -> None:
    try:
        os.killpg(pid, signum)
    except OSError:
        pass


def shell_environ(extra: dict[str, str]) -> dict[str, str]:
    environ = dict(os.environ)
    environ.update(extra)
    return environ


def existing_dir(path: Path) -> str | None:
    return str(path) if path.is_dir() else None


def run_batch(ctx: RunContext, work_dir: Path) -> None:
    """Run the build command (if any), then the code; report one result."""
    snapshot = OutputSnapshot(work_dir / ".output")
    status = protocol.STATUS_FINISHED
    message = ""
    exit_code: int | None = None
    ctx.start_watchdog()
    try:
        if ctx.build_command:
            exit_code = _run_streamed(ctx, ctx.build_command, work_dir)
            if exit_code != 0:
                message = "build command failed"
        if exit_code in (None, 0) and not ctx.interrupted:
            exit_code = _run_streamed(ctx, ctx.code, work_dir)
        if ctx.interrupted:
            status = ctx.status_after_stop()
        elif message:
            status = protocol.STATUS_FAILED
    except OSError as exc:
        status, message = protocol.STATUS_FAILED, f"cannot start the command: {exc}"
    ctx.finish(status, exit_code, snapshot.changed(), message)


def _run_streamed(ctx: RunContext, command: str, work_dir: Path) -> int:
    process = subprocess.Popen(
        ["/bin/sh", "-c", command],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        cwd=existing_dir(work_dir),
        env=shell_environ(ctx.environ),
        start_new_session=True,
    )
    ctx.on_interrupt = lambda: signal_group(process.pid, signal.SIGINT)
    ctx.on_kill = lambda: signal_group(process.pid, signal.SIGKILL)
    readers = [
        threading.Thread(target=_pump_output, args=(ctx, "stdout", process.stdout), daemon=True),
        threading.Thread(target=_pump_output, args=(ctx, "stderr", process.stderr), daemon=True),
    ]
    for reader in readers:
        reader.start()
    writer = threading.Thread(target=_pump_stdin, args=(ctx, process), daemon=True)
    writer.start()
    if ctx.interrupted:
        signal_group(process.pid, signal.SIGINT)
    returncode = process.wait()
    for reader in readers:
        reader.join(PIPE_DRAIN_SECONDS)
    return exit_status(returncode)


def _pump_output(ctx: RunContext, stream: str, pipe: IO[bytes] | None) -> None:
    if pipe is None:
        return
    fd = pipe.fileno()
    while True:
        chunk = os.read(fd, READ_CHUNK)
        if not chunk:
            break
        ctx.emit(stream, chunk)
    pipe.close()


def _pump_stdin(ctx: RunContext, process: subprocess.Popen[bytes]) -> None:
    pipe = process.stdin
    if pipe is None:
        return
    while process.poll() is None:
        try:
            chunk = ctx.stdin.get(timeout=STDIN_POLL_SECONDS)
        except queue.Empty:
            continue
        try:
            if chunk is None:
                pipe.close()
                return
            pipe.write(chunk)
            pipe.flush()
        except OSError:
            return
