"""The runner's unix-socket server: one thread per connection, one run at a time.
Stdlib only, python3.9-compatible."""

from __future__ import annotations

import socket
import threading
import uuid
from pathlib import Path

from . import protocol
from .batch_exec import run_batch
from .query_exec import QueryExecutor
from .run_context import Connection, RunContext


class RunnerServer:
    def __init__(self, socket_path: Path, executor: QueryExecutor) -> None:
        self.socket_path = socket_path
        self.executor = executor
        self._run_slot = threading.Lock()
        self._listener = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)

    def listen(self) -> None:
        """Bind the socket (while the runner may still write the run directory); clients
        that connect wait until `start`."""
        if self.socket_path.exists() or self.socket_path.is_symlink():
            self.socket_path.unlink()
        self._listener.bind(str(self.socket_path))
        self._listener.listen(16)

    def start(self) -> None:
        """Accept in a background thread."""
        threading.Thread(target=self._accept_loop, daemon=True).start()

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
                else:
                    return
        finally:
            connection.close()

    def _run(self, connection: Connection, request: protocol.Message) -> None:
        if not self._run_slot.acquire(blocking=False):
            connection.send({"op": protocol.OP_BUSY, "message": "another run is in progress"})
            return
        ctx = RunContext(connection, request, uuid.uuid4().hex, self._run_slot.release)
        connection.send({"op": protocol.OP_ACCEPTED, "run_id": ctx.run_id})
        if ctx.mode == protocol.MODE_BATCH:
            work_dir = self.executor.work_dir
            threading.Thread(target=run_batch, args=(ctx, work_dir), daemon=True).start()
        elif ctx.mode == protocol.MODE_QUERY:
            self.executor.jobs.put(ctx)
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
