"""``bai session exec``: run code in a session with the terminal attached.

Output chunks go to stdout/stderr as they arrive; when the program waits for
input, a line of the terminal's stdin is sent (end of input closes the
program's stdin). The first Ctrl-C asks the server to interrupt the run (its
result still comes back); a second one abandons the stream. The exit code is
the run's: its exit code, else 124 for a timeout, 130 for an interrupt and 1
for a failed run.
"""

from __future__ import annotations

import argparse
import contextlib
import getpass
import json
import signal
import sys
import threading
from collections.abc import Iterator
from datetime import timedelta
from types import FrameType
from typing import Any, TextIO

from bai.api.common.v1 import execution_pb2
from bai.cli.context import Context, UsageError, common_options
from bai.cli.output import to_dict
from bai.cli.units import parse_duration
from bai.client import Client, Execution, execute

MODES = ["query", "batch"]
TIMED_OUT, INTERRUPTED = 124, 130


def write_bytes(stream: TextIO, data: bytes) -> None:
    """Raw bytes to a text stream (through its buffer when it has one), flushed."""
    stream.flush()
    buffer = getattr(stream, "buffer", None)
    if buffer is not None:
        buffer.write(data)
        buffer.flush()
    else:
        stream.write(data.decode(errors="replace"))
        stream.flush()


def write_output(ctx: Context, output: execution_pb2.ExecutionOutput) -> None:
    if output.stream == execution_pb2.OUTPUT_STREAM_STDOUT:
        write_bytes(ctx.out, output.data)
    elif output.stream in (execution_pb2.OUTPUT_STREAM_STDERR, execution_pb2.OUTPUT_STREAM_LOG):
        write_bytes(sys.stderr, output.data)
    else:
        kind = output.media_type or "html"
        ctx.note(f"[{kind} output, {len(output.data)} bytes]")


def forward_stdin(
    ctx: Context, run: Execution, waiting: execution_pb2.ExecutionWaitingInput
) -> None:
    """One line of our stdin for the program (EOF closes its stdin)."""
    if waiting.is_password and sys.stdin.isatty():
        run.send_stdin(getpass.getpass(waiting.prompt) + "\n")
        return
    if waiting.prompt:
        write_bytes(ctx.out, waiting.prompt.encode())
    line = sys.stdin.readline()
    if line:
        run.send_stdin(line)
    else:
        run.close_stdin()


@contextlib.contextmanager
def ctrl_c_interrupts(ctx: Context, run: Execution) -> Iterator[None]:
    """First SIGINT: interrupt the run on the server; the next: KeyboardInterrupt."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return
    pressed = threading.Event()

    def on_sigint(signum: int, frame: FrameType | None) -> None:
        if pressed.is_set():
            raise KeyboardInterrupt
        pressed.set()
        # A thread, so that neither the queue nor stderr is entered re-entrantly.
        threading.Thread(target=_interrupt, args=(ctx, run), daemon=True).start()

    previous = signal.signal(signal.SIGINT, on_sigint)
    try:
        yield
    finally:
        signal.signal(signal.SIGINT, previous)


def _interrupt(ctx: Context, run: Execution) -> None:
    ctx.note("interrupting the run (Ctrl-C again to stop waiting for it)")
    run.interrupt()


def exit_status(ctx: Context, run: Execution) -> int:
    result = run.result
    if result is None:
        ctx.note("error: the run ended without a result")
        return 1
    status = result.status
    if status == execution_pb2.EXECUTION_STATUS_TIMED_OUT:
        ctx.note("error: the run timed out")
    elif status == execution_pb2.EXECUTION_STATUS_INTERRUPTED:
        ctx.note("the run was interrupted")
    elif status == execution_pb2.EXECUTION_STATUS_FAILED:
        ctx.note(f"error: the run failed: {result.message or 'no detail'}")
    if result.HasField("exit_code"):
        return result.exit_code
    return {
        execution_pb2.EXECUTION_STATUS_TIMED_OUT: TIMED_OUT,
        execution_pb2.EXECUTION_STATUS_INTERRUPTED: INTERRUPTED,
    }.get(status, 0 if status == execution_pb2.EXECUTION_STATUS_FINISHED else 1)


def run_code(
    ctx: Context,
    client: Client,
    session_id: str,
    code: str,
    mode: str,
    exec_timeout: timedelta | None,
) -> int:
    """Execute ``code`` with the terminal attached; the run's exit code."""
    with (
        execute(client, session_id, code, mode=mode, exec_timeout=exec_timeout) as run,
        ctrl_c_interrupts(ctx, run),
    ):
        for response in run:
            kind = response.WhichOneof("payload")
            if ctx.json:
                ctx.print(json.dumps(to_dict(response), separators=(",", ":")))
                ctx.out.flush()
            elif kind == "output":
                write_output(ctx, response.output)
            if kind == "waiting_input":
                forward_stdin(ctx, run, response.waiting_input)
    return exit_status(ctx, run)


def exec_timeout_arg(args: argparse.Namespace) -> timedelta | None:
    if args.exec_timeout is None:
        return None
    try:
        return parse_duration(args.exec_timeout)
    except ValueError as exc:
        raise UsageError(f"--timeout: {exc}") from exc


def add_run_options(p: argparse.ArgumentParser) -> None:
    """--mode and --timeout (the run's limit, replacing the common per-call --timeout)."""
    p.add_argument(
        "--mode",
        choices=MODES,
        help="query: code for the kernel's runtime (default); batch: a shell command line",
    )
    p.add_argument(
        "--timeout",
        dest="exec_timeout",
        metavar="DURATION",
        help="limit for the run, e.g. 30s, 5m (then it ends timed out); default: none",
    )


def exec_(args: argparse.Namespace, ctx: Context) -> int:
    from bai.cli.session_cmd import session_id

    if (args.code is None) == (args.command is None):
        raise UsageError("give either CODE or -c CMD")
    code = args.code if args.code is not None else args.command
    mode = args.mode or ("batch" if args.command is not None else "query")
    exec_timeout = exec_timeout_arg(args)
    client = ctx.client()
    return run_code(ctx, client, session_id(client, args.session), code, mode, exec_timeout)


class IntermixedParser(argparse.ArgumentParser):
    """Accepts options between positionals: `exec demo --mode batch 'ls'`.

    Plain argparse binds every positional at the first one it meets, so CODE
    after an option would be "unrecognized".
    """

    _intermixing = False

    def parse_known_args(  # type: ignore[override]
        self, args: Any = None, namespace: Any = None
    ) -> tuple[argparse.Namespace, list[str]]:
        if self._intermixing:
            return super().parse_known_args(args, namespace)
        self._intermixing = True
        try:
            return self.parse_known_intermixed_args(args, namespace)
        finally:
            self._intermixing = False


def run_parser(sub: Any, name: str, help_text: str, description: str) -> argparse.ArgumentParser:
    """A parser whose --timeout is the run's limit instead of the per-call timeout.

    It gets a fresh copy of the common options: resolving the --timeout conflict
    edits the parent's action, which must not be shared with other commands.
    """
    parser: argparse.ArgumentParser = sub.add_parser(
        name,
        help=help_text,
        description=description,
        parents=[common_options()],
        conflict_handler="resolve",
    )
    # add_parser builds the class its subparsers action was given; only these
    # commands take code after options.
    parser.__class__ = IntermixedParser
    return parser


def register(cmds: Any, common: argparse.ArgumentParser) -> None:
    p = run_parser(
        cmds,
        "exec",
        "run code in a session, streaming its output",
        "Run code (query mode) or a shell command line (-c, batch mode) in the session's "
        "main kernel. Output is streamed to stdout/stderr as it comes; when the program "
        "waits for input, a line of stdin is sent. Ctrl-C interrupts the run. The exit "
        "code is the run's (124: timed out, 130: interrupted).",
    )
    p.add_argument("session", metavar="ID|NAME", help="session id, or name of a live session")
    p.add_argument("code", nargs="?", metavar="CODE", help="code for the kernel's language runtime")
    p.add_argument("-c", "--command", metavar="CMD", help="a shell command line (batch mode)")
    add_run_options(p)
    p.set_defaults(func=exec_)
