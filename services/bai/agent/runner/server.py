"""The runner's unix-socket server: one thread per connection, one run at a time.
Stdlib only, python3.9-compatible.

It answers pings as soon as it accepts, which the runner starts before it loads
its executors and becomes the kernel's user: the agent sees the kernel ready
sooner. Runs wait until `open_runs`.
"""

from __future__ import annotations

import os
import queue
import socket
import threading
from collections.abc import Callable
from pathlib import Path

from . import protocol
from .run_context import Connection, RunContext

TYPE_CHECKING = False
if TYPE_CHECKING:
    from .app_services import ServiceSupervisor

BatchRunner = Callable[[RunContext, Path], None]


class RunnerServer:
    def __init__(self, socket_path: Path, work_dir: Path) -> None:
        self.socket_path = socket_path
        self.work_dir = work_dir
        # Query runs, for the executor in the main thread.
        self.query_jobs: queue.SimpleQueue[RunContext] = queue.SimpleQueue()
        self._run_slot = threading.Lock()
        self._run_batch: BatchRunner | None = None
        self._services: ServiceSupervisor | None = None
        self._runs_open = threading.Event()
        self._listener = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)

    def listen(self) -> None:
        """Bind the socket (while the runner may still write the run directory); clients
        that connect wait until `start`."""
        if self.socket_path.exists() or self.socket_path.is_symlink():
            self.socket_path.unlink()
        self._listener.bind(str(self.socket_path))
        self._listener.listen(16)

    def start(self) -> None:
        """Accept in a background thread: pings are answered, runs wait for `open_runs`."""
        threading.Thread(target=self._accept_loop, daemon=True).start()

    def open_runs(self, run_batch: BatchRunner, services: ServiceSupervisor) -> None:
        """Start runs and apps (the runner is now its kernel's user; query runs go to
        `query_jobs`)."""
        self._run_batch = run_batch
        self._services = services
        self._runs_open.set()

    def close(self) -> None:
        try:
            self.socket_path.unlink()
        except OSError:
            pass
        self._listener.close()

    def _accept_loop(self) -> None:
        while True:
            try:
                sock, _ = self._listener.accept()
            except OSError:
                return
            threading.Thread(target=self._serve, args=(sock,), daemon=True).start()

    def _serve(self, sock: socket.socket) -> None:
        connection = Connection(sock)
        try:
            while True:
                request = connection.read()
                if request is None:
                    return
                if request["op"] == protocol.OP_PING:
                    busy = self._run_slot.locked()
                    connection.send(
                        {"op": protocol.OP_PONG, "version": protocol.VERSION, "busy": busy}
                    )
                elif request["op"] == protocol.OP_RUN:
                    self._run(connection, request)
                    return
                elif request["op"] in (protocol.OP_SERVICE_START, protocol.OP_SERVICE_STOP):
                    self._service(connection, request)
                    return
                else:
                    return
        finally:
            connection.close()

    def _service(self, connection: Connection, request: protocol.Message) -> None:
        from .app_services import ServiceFailed

        self._runs_open.wait()
        services = self._services
        name = str(request.get("name") or "")
        reply: protocol.Message = {"op": protocol.OP_SERVICE, "name": name}
        try:
            if services is None or not name:
                raise ServiceFailed("apps cannot be started in this kernel")
            if request["op"] == protocol.OP_SERVICE_STOP:
                reply.update(running=False, was_running=services.stop_locked(name))
            else:
                reply.update(running=True, already_running=services.start(request))
        except (ServiceFailed, OSError, ValueError, KeyError, IndexError) as exc:
            reply = {"op": protocol.OP_SERVICE_FAILED, "name": name, "message": str(exc)}
        connection.send(reply)

    def _run(self, connection: Connection, request: protocol.Message) -> None:
        self._runs_open.wait()
        if not self._run_slot.acquire(blocking=False):
            connection.send({"op": protocol.OP_BUSY, "message": "another run is in progress"})
            return
        # Random hex like uuid4's, without importing uuid (slow) into the runner.
        ctx = RunContext(connection, request, os.urandom(16).hex(), self._run_slot.release)
        connection.send({"op": protocol.OP_ACCEPTED, "run_id": ctx.run_id})
        # Out before the code starts: a run that holds the GIL and gets the
        # kernel OOM-killed must still have been accepted, or the client
        # cannot tell a failed run from a runner that never took it.
        connection.flush()
        if ctx.mode == protocol.MODE_BATCH and self._run_batch is not None:
            args = (ctx, self.work_dir)
            threading.Thread(target=self._run_batch, args=args, daemon=True).start()
        elif ctx.mode == protocol.MODE_QUERY:
            self.query_jobs.put(ctx)
        else:
            ctx.finish(protocol.STATUS_FAILED, None, [], f"unknown mode {ctx.mode!r}")
        self._follow_client(connection, ctx)

    def _follow_client(self, connection: Connection, ctx: RunContext) -> None:
        """Relay stdin and interrupts until the client closes the connection.

        Frames that come after the result (the end of stdin, sent as the client's
        caller finished) are read and dropped: a write that met a closed socket
        would make the client fail before it read the result.
        """
        while True:
            frame = connection.read()
            if frame is None:
                break
            if ctx.done.is_set():
                continue
            if frame["op"] == protocol.OP_STDIN:
                try:
                    data = protocol.decode_data(frame)
                except protocol.ProtocolError:
                    data = b""
                ctx.feed_stdin(data, bool(frame.get("eof")))
            elif frame["op"] == protocol.OP_INTERRUPT:
                ctx.interrupt()
        if not ctx.done.is_set():
            # The client left before the result: the run is stopped.
            ctx.feed_stdin(b"", eof=True)
            ctx.interrupt()
        ctx.done.wait()
