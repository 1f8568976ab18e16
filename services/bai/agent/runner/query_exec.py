"""Query mode: Python code run in the runner's main thread, in one namespace that
lives as long as the kernel (REPL semantics). Stdlib only, python3.9-compatible.

The code runs in the main thread so that an interrupt is a real SIGINT: it
breaks `while True: pass` and blocking calls such as `time.sleep` alike. The
SIGINT handler raises KeyboardInterrupt only while the user code of the run it
was meant for is executing, so a late interrupt hits neither the runner's own
bookkeeping nor the next run.
"""

from __future__ import annotations

import ast
import builtins
import codecs
import getpass
import io
import linecache
import os
import queue
import signal
import sys
import threading
import traceback
from pathlib import Path
from types import FrameType, TracebackType
from typing import Any

from . import protocol
from .run_context import OutputSnapshot, RunContext

# Exit status reported when the runner gives up on a run that ignores interrupts.
EXIT_STUCK_RUN = 137


class _BinaryOutput:
    """`sys.stdout.buffer` for code that writes bytes."""

    def __init__(self, ctx: RunContext, stream: str) -> None:
        self._ctx = ctx
        self._stream = stream

    def write(self, data: bytes) -> int:
        self._ctx.emit(self._stream, bytes(data))
        return len(data)

    def flush(self) -> None:
        return None


class RunOutput(io.TextIOBase):
    """sys.stdout / sys.stderr during a run: every write becomes one output frame."""

    def __init__(self, ctx: RunContext, stream: str) -> None:
        super().__init__()
        self._ctx = ctx
        self._stream = stream
        self.buffer = _BinaryOutput(ctx, stream)

    encoding = "utf-8"

    def writable(self) -> bool:
        return True

    def isatty(self) -> bool:
        return False

    def write(self, text: str) -> int:
        if not isinstance(text, str):
            raise TypeError(f"write() argument must be str, not {type(text).__name__}")
        self._ctx.emit(self._stream, text.encode("utf-8", "replace"))
        return len(text)


class RunInput(io.TextIOBase):
    """sys.stdin during a run: a read that needs more data asks the client for it."""

    def __init__(self, ctx: RunContext) -> None:
        super().__init__()
        self._ctx = ctx
        self._buffer = ""
        self._eof = False
        # Incremental, so a character split across two stdin frames survives.
        self._decoder = codecs.getincrementaldecoder("utf-8")("replace")

    encoding = "utf-8"

    def readable(self) -> bool:
        return True

    def readline(self, size: int | None = -1) -> str:  # type: ignore[override]
        return self.prompted_readline("", False)

    def read(self, size: int | None = -1) -> str:
        announced = False
        while not self._eof:
            self._wait_for_data("", False, announce=not announced)
            announced = True
        text, self._buffer = self._buffer, ""
        return text

    def prompted_readline(self, prompt: str, is_password: bool) -> str:
        announced = False
        while "\n" not in self._buffer and not self._eof:
            # One request per read: a long line may arrive in several stdin frames.
            self._wait_for_data(prompt, is_password, announce=not announced)
            announced = True
        line, newline, rest = self._buffer.partition("\n")
        self._buffer = rest
        return line + newline

    def _wait_for_data(self, prompt: str, is_password: bool, announce: bool) -> None:
        if announce:
            self._ctx.waiting_input(prompt, is_password)
        chunk = self._ctx.stdin.get()
        if chunk is None:
            self._eof = True
            self._buffer += self._decoder.decode(b"", final=True)
        else:
            self._buffer += self._decoder.decode(chunk)


class QueryExecutor:
    """Runs queued query runs one after another in the main thread."""

    def __init__(self, work_dir: Path, jobs: queue.SimpleQueue[RunContext]) -> None:
        self.work_dir = work_dir
        self.jobs = jobs
        self.namespace: dict[str, Any] = {"__name__": "__main__", "__builtins__": builtins}
        self._main_thread = threading.main_thread().ident
        # The run whose user code is executing right now, if any.
        self._running: RunContext | None = None
        self._cell = 0

    def serve_forever(self) -> None:
        signal.signal(signal.SIGINT, self._on_sigint)
        if str(self.work_dir) not in sys.path:
            sys.path.insert(0, str(self.work_dir))
        while True:
            self.execute(self.jobs.get())

    def _on_sigint(self, signum: int, frame: FrameType | None) -> None:
        # Only an interrupt meant for the code running now: a signal sent for a run
        # that has just ended must not hit the next one.
        running = self._running
        if running is not None and running.interrupted:
            raise KeyboardInterrupt

    def _interrupt_main(self) -> None:
        if self._main_thread is not None:
            signal.pthread_kill(self._main_thread, signal.SIGINT)

    def _give_up(self, ctx: RunContext) -> None:
        ctx.finish(
            protocol.STATUS_TIMED_OUT,
            None,
            [],
            "the code ignored the interrupt; the kernel runner exits",
        )
        ctx.connection.close()
        os._exit(EXIT_STUCK_RUN)

    def execute(self, ctx: RunContext) -> None:
        snapshot = OutputSnapshot(self.work_dir / ".output")
        if ctx.interrupted:
            ctx.finish(protocol.STATUS_INTERRUPTED, None, [], "interrupted before it started")
            return
        ctx.on_interrupt = self._interrupt_main
        ctx.on_kill = lambda: self._give_up(ctx)
        stdout, stderr, stdin = RunOutput(ctx, "stdout"), RunOutput(ctx, "stderr"), RunInput(ctx)
        saved = (sys.stdout, sys.stderr, sys.stdin, builtins.input, getpass.getpass)
        sys.stdout, sys.stderr, sys.stdin = stdout, stderr, stdin
        builtins.input = lambda prompt="": _prompted_input(stdin, str(prompt), False)
        getpass.getpass = lambda prompt="Password: ", stream=None: _prompted_input(
            stdin, str(prompt), True
        )
        os.environ.update(ctx.environ)
        exit_code: int | None = 0
        message = ""
        ctx.start_watchdog()
        try:
            try:
                self._running = ctx
                if ctx.interrupted:
                    # Interrupted between being queued and now: its signal was ignored.
                    raise KeyboardInterrupt
                self._run_cell(ctx.code)
            finally:
                self._running = None
        except KeyboardInterrupt:
            stderr.write("KeyboardInterrupt\n")
            exit_code = None
        except SystemExit as exc:
            exit_code = exc.code if isinstance(exc.code, int) else (0 if exc.code is None else 1)
            message = "SystemExit"
        except BaseException as exc:
            _print_user_traceback(exc, stderr)
            exit_code = 1
        finally:
            sys.stdout, sys.stderr, sys.stdin, builtins.input, getpass.getpass = saved
        status = ctx.status_after_stop() if exit_code is None else protocol.STATUS_FINISHED
        ctx.finish(status, exit_code, snapshot.changed(), message)

    def _run_cell(self, code: str) -> None:
        self._cell += 1
        filename = f"<cell-{self._cell}>"
        linecache.cache[filename] = (len(code), None, code.splitlines(True), filename)
        tree = ast.parse(code, filename, "exec")
        last: ast.Interactive | None = None
        if tree.body and isinstance(tree.body[-1], ast.Expr):
            last = ast.Interactive(body=[tree.body.pop()])
        exec(compile(tree, filename, "exec"), self.namespace)
        if last is not None:
            # "single" mode prints the value through sys.displayhook, like the REPL.
            exec(compile(last, filename, "single"), self.namespace)


def _prompted_input(stdin: RunInput, prompt: str, is_password: bool) -> str:
    line = stdin.prompted_readline(prompt, is_password)
    if not line:
        raise EOFError("EOF when reading a line")
    return line[:-1] if line.endswith("\n") else line


def _print_user_traceback(exc: BaseException, stream: RunOutput) -> None:
    """The traceback without the runner's own frames."""
    tb: TracebackType | None = exc.__traceback__
    if isinstance(exc, SyntaxError):
        # Raised while compiling: the frames are the compiler's, not the user's.
        tb = None
    while tb is not None and tb.tb_frame.f_code.co_filename == __file__:
        tb = tb.tb_next
    traceback.print_exception(type(exc), exc, tb, file=stream)
