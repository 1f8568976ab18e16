"""One run's shared state inside the runner: its connection, output sequence,
stdin, interruption and result. Stdlib only, python3.9-compatible.

Frames go out through a per-connection sender thread fed by a `SimpleQueue`:
query-mode output is produced in the main thread, where an interrupt may
raise KeyboardInterrupt at any bytecode; a C-level `put` cannot be torn in
half by it the way a partial `sendall` could.
"""

from __future__ import annotations

import itertools
import os
import queue
import socket
import threading
from collections.abc import Callable
from pathlib import Path

from . import protocol

# How long a timed-out run gets to stop after its interrupt before it is killed.
KILL_GRACE_SECONDS = 2.0


class Connection:
    """A client connection: frames in on the caller's thread, out on a sender thread."""

    def __init__(self, sock: socket.socket) -> None:
        self._sock = sock
        self._rfile = sock.makefile("rb")
        self._outbox: queue.SimpleQueue[protocol.Message | threading.Event | None] = (
            queue.SimpleQueue()
        )
        self._closed = False
        self._sender = threading.Thread(target=self._send_loop, daemon=True)
        self._sender.start()

    def read(self) -> protocol.Message | None:
        """The next frame; None when the peer closed or sent garbage."""
        try:
            return protocol.read_frame_sync(self._rfile)
        except (OSError, protocol.ProtocolError):
            return None

    def send(self, message: protocol.Message) -> None:
        self._outbox.put(message)

    def flush(self) -> None:
        """Wait until every frame queued so far was written (or the peer is gone).

        Only for threads that cannot be interrupted (not the main thread)."""
        written = threading.Event()
        self._outbox.put(written)
        written.wait()

    def close(self) -> None:
        """Flush what was queued, then close. Idempotent."""
        if self._closed:
            return
        self._closed = True
        self._outbox.put(None)
        self._sender.join()
        try:
            self._sock.shutdown(socket.SHUT_RDWR)
        except OSError:
            pass
        self._rfile.close()
        self._sock.close()

    def _send_loop(self) -> None:
        alive = True
        while True:
            message = self._outbox.get()
            if message is None:
                return
            if isinstance(message, threading.Event):
                message.set()
                continue
            if not alive:
                continue
            try:
                self._sock.sendall(protocol.encode_frame(message))
            except OSError:
                alive = False


class RunContext:
    """What the connection thread and the executing code share about one run."""

    def __init__(
        self,
        connection: Connection,
        request: protocol.Message,
        run_id: str,
        release: Callable[[], None],
    ) -> None:
        self.connection = connection
        # Frees the runner for the next run; called before the result goes out, so a
        # client that starts its next run on seeing the result is never told "busy".
        self._release = release
        self.run_id = run_id
        self.mode = str(request.get("mode") or protocol.MODE_QUERY)
        self.code = str(request.get("code") or "")
        self.build_command = str(request.get("build_command") or "")
        timeout = request.get("timeout")
        self.timeout: float | None = float(timeout) if timeout else None
        environ = request.get("environ") or {}
        self.environ = {str(k): str(v) for k, v in dict(environ).items()}
        self.stdin: queue.SimpleQueue[bytes | None] = queue.SimpleQueue()
        self.interrupted = False
        self.timed_out = False
        self.done = threading.Event()
        self._seq = itertools.count()
        # Set by the executor once the run is under way.
        self.on_interrupt: Callable[[], None] | None = None
        self.on_kill: Callable[[], None] | None = None

    def emit(self, stream: str, data: bytes) -> None:
        if not data:
            return
        for piece in protocol.chunks(data):
            frame = {"op": protocol.OP_OUTPUT, "stream": stream, "seq": next(self._seq)}
            frame["data"] = protocol.encode_data(piece)
            self.connection.send(frame)

    def waiting_input(self, prompt: str, is_password: bool) -> None:
        self.connection.send(
            {"op": protocol.OP_WAITING_INPUT, "prompt": prompt, "is_password": is_password}
        )

    def feed_stdin(self, data: bytes, eof: bool) -> None:
        if data:
            self.stdin.put(data)
        if eof:
            self.stdin.put(None)

    def interrupt(self) -> None:
        self.interrupted = True
        callback = self.on_interrupt
        if callback is not None and not self.done.is_set():
            callback()

    def finish(self, status: str, exit_code: int | None, files: list[str], message: str) -> None:
        if self.done.is_set():
            return
        self._release()
        self.connection.send(
            {
                "op": protocol.OP_RESULT,
                "status": status,
                "exit_code": exit_code,
                "files": files,
                "message": message,
            }
        )
        self.done.set()

    def status_after_stop(self) -> str:
        if self.timed_out:
            return protocol.STATUS_TIMED_OUT
        if self.interrupted:
            return protocol.STATUS_INTERRUPTED
        return protocol.STATUS_FINISHED

    def start_watchdog(self) -> None:
        """Interrupt the run at its timeout; kill it if it is still going after the grace."""
        if self.timeout is None:
            return
        thread = threading.Thread(target=self._watch, args=(self.timeout,), daemon=True)
        thread.start()

    def _watch(self, timeout: float) -> None:
        if self.done.wait(timeout):
            return
        self.timed_out = True
        self.interrupt()
        if self.done.wait(KILL_GRACE_SECONDS):
            return
        kill = self.on_kill
        if kill is not None:
            kill()


class OutputSnapshot:
    """Files under the work dir's output folder, to report what a run left there."""

    def __init__(self, output_dir: Path) -> None:
        self.output_dir = output_dir
        self.before = self._scan()

    def changed(self) -> list[str]:
        after = self._scan()
        return sorted(path for path, stamp in after.items() if self.before.get(path) != stamp)

    def _scan(self) -> dict[str, tuple[int, int]]:
        found: dict[str, tuple[int, int]] = {}
        if not self.output_dir.is_dir():
            return found
        for root, _dirs, files in os.walk(self.output_dir):
            for name in files:
                path = Path(root, name)
                try:
                    info = path.stat()
                except OSError:
                    continue
                relative = path.relative_to(self.output_dir).as_posix()
                found[relative] = (info.st_mtime_ns, info.st_size)
        return found
