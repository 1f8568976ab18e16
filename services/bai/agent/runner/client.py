"""The agent's side of the runner protocol (asyncio).

One `RunnerClient` per kernel, pointed at the runner's socket in the kernel's
run directory on the host. Each run is one connection; the runner answers
"busy" while another run is going, and closing a handle before its result
interrupts the run.

A connection is a plain non-blocking socket rather than an asyncio stream: a
failed write must not cost the frames the runner already sent (an asyncio
transport drops its unread input on a write error). Writes are best effort;
what the runner sent, read to its end, says how the run went.
"""

from __future__ import annotations

import asyncio
import contextlib
import socket
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Literal

from . import protocol

# sockaddr_un.sun_path holds 108 bytes including the terminating NUL.
MAX_SOCKET_PATH_BYTES = 107
READ_CHUNK_BYTES = 256 * 1024
# Until the runner's socket exists: a short flat poll while a start is usually
# under way (a failed connect costs microseconds), then backing off.
READY_POLL_SECONDS = 0.005
READY_POLL_FAST_FOR_SECONDS = 2.0
READY_POLL_MAX_SECONDS = 0.25
# How long closing an unfinished run waits for the runner to report it stopped
# (the runner's own kill grace is 2 s).
CLOSE_WAIT_SECONDS = 5.0

RunStatus = Literal["finished", "timed_out", "interrupted", "failed"]


class RunnerError(Exception):
    """Base of the client's errors."""


class RunnerUnavailable(RunnerError):
    """The runner cannot be reached, or it went away in the middle of a run."""


class RunnerBusy(RunnerError):
    """Another run is in progress in this kernel (RUN_IN_PROGRESS)."""


@dataclass(frozen=True)
class RunSpec:
    mode: Literal["query", "batch"]
    code: str
    build_command: str = ""
    # Seconds; None: no limit.
    timeout: float | None = None
    environ: dict[str, str] = field(default_factory=dict)


@dataclass(frozen=True)
class RunOutput:
    stream: Literal["stdout", "stderr"]
    data: bytes
    seq: int


@dataclass(frozen=True)
class RunWaitingInput:
    prompt: str
    is_password: bool


@dataclass(frozen=True)
class RunResult:
    status: RunStatus
    # The code's exit status; None when it did not finish (interrupted, timed out).
    exit_code: int | None
    # Paths relative to /home/work/.output that the run created or changed.
    files: list[str]
    message: str


RunEvent = RunOutput | RunWaitingInput | RunResult


class FrameConnection:
    """One connection to the runner; reading and writing fail independently."""

    def __init__(self, sock: socket.socket) -> None:
        sock.setblocking(False)
        self._sock = sock
        self._buffer = bytearray()
        self._eof = False
        self._closed = False
        # Reads and writes awaiting the socket: its descriptor is closed after them.
        self._in_flight = 0

    @classmethod
    async def open(cls, path: str) -> FrameConnection:
        sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        sock.setblocking(False)
        try:
            await asyncio.get_running_loop().sock_connect(sock, path)
        except BaseException:
            sock.close()
            raise
        return cls(sock)

    @property
    def closed(self) -> bool:
        return self._closed

    async def read_frame(self) -> protocol.Message | None:
        """The next frame; None at the end of what the runner sent (or after close)."""
        while True:
            frame = self._take_frame()
            if frame is not None:
                return frame
            if self._eof or self._closed:
                if self._buffer and not self._closed:
                    raise protocol.ProtocolError("connection closed inside a frame")
                return None
            chunk = await self._recv()
            if chunk:
                self._buffer += chunk
            else:
                self._eof = True

    async def write_frame(self, message: protocol.Message) -> None:
        if self._closed:
            raise BrokenPipeError("the connection is closed")
        data = protocol.encode_frame(message)
        self._in_flight += 1
        try:
            await asyncio.get_running_loop().sock_sendall(self._sock, data)
        finally:
            self._in_flight -= 1
            self._release()

    def close(self) -> None:
        """End the connection; a read or write still waiting on it ends at once."""
        if self._closed:
            return
        self._closed = True
        with contextlib.suppress(OSError):
            self._sock.shutdown(socket.SHUT_RDWR)
        self._release()

    def _take_frame(self) -> protocol.Message | None:
        header_size = protocol.HEADER.size
        if len(self._buffer) < header_size:
            return None
        end = header_size + protocol.frame_length(bytes(self._buffer[:header_size]))
        if len(self._buffer) < end:
            return None
        body = bytes(self._buffer[header_size:end])
        del self._buffer[:end]
        return protocol.decode_body(body)

    async def _recv(self) -> bytes:
        self._in_flight += 1
        try:
            return await asyncio.get_running_loop().sock_recv(self._sock, READ_CHUNK_BYTES)
        except ConnectionResetError:
            # The runner closed with our last frames unread: everything it sent was read.
            return b""
        finally:
            self._in_flight -= 1
            self._release()

    def _release(self) -> None:
        # Closing the descriptor under a pending asyncio read or write would strand it.
        if self._closed and self._in_flight == 0:
            self._sock.close()


def _to_event(frame: protocol.Message) -> RunEvent | None:
    op = frame["op"]
    if op == protocol.OP_OUTPUT:
        stream: Literal["stdout", "stderr"] = "stderr" if frame["stream"] == "stderr" else "stdout"
        return RunOutput(stream, protocol.decode_data(frame), int(frame["seq"]))
    if op == protocol.OP_WAITING_INPUT:
        return RunWaitingInput(str(frame.get("prompt", "")), bool(frame.get("is_password")))
    if op == protocol.OP_RESULT:
        status = str(frame["status"])
        if status not in ("finished", "timed_out", "interrupted", "failed"):
            raise protocol.ProtocolError(f"unknown run status {status!r}")
        exit_code = frame.get("exit_code")
        return RunResult(
            status=status,  # type: ignore[arg-type]
            exit_code=None if exit_code is None else int(exit_code),
            files=[str(path) for path in frame.get("files") or []],
            message=str(frame.get("message") or ""),
        )
    return None


class RunHandle:
    """One run in progress. Iterate `events()` once, to the RunResult."""

    def __init__(self, run_id: str, connection: FrameConnection) -> None:
        self.run_id = run_id
        self._connection = connection
        self._write_lock = asyncio.Lock()
        self._result: RunResult | None = None
        self._reading = False
        # Set once a write failed: the runner stopped reading, nothing more goes out.
        self._write_failed = False

    @property
    def result(self) -> RunResult | None:
        return self._result

    async def events(self) -> AsyncIterator[RunEvent]:
        """Output and input requests as they happen, then the result; raises
        RunnerUnavailable if the runner goes away first."""
        while self._result is None:
            try:
                self._reading = True
                try:
                    frame = await self._connection.read_frame()
                finally:
                    self._reading = False
                if frame is None:
                    raise RunnerUnavailable("the runner closed the connection before the result")
                event = _to_event(frame)
            except (OSError, KeyError, ValueError, protocol.ProtocolError) as exc:
                raise RunnerUnavailable(f"runner connection failed: {exc!r}") from exc
            if isinstance(event, RunResult):
                self._result = event
            if event is not None:
                yield event

    async def _drain_to_result(self) -> None:
        async for _event in self.events():
            pass

    async def send_stdin(self, data: bytes, eof: bool = False) -> None:
        pieces = protocol.chunks(data)
        for index, piece in enumerate(pieces):
            last = index == len(pieces) - 1
            encoded = protocol.encode_data(piece)
            await self._send({"op": protocol.OP_STDIN, "data": encoded, "eof": eof and last})

    async def interrupt(self) -> None:
        await self._send({"op": protocol.OP_INTERRUPT})

    async def close(self) -> None:
        """Release the connection; before the result this interrupts the run."""
        if self._connection.closed:
            return
        if self._result is None and not self._reading:
            # Wait (briefly) for the interrupted run to end, so that the kernel is free
            # for the next run once this returns.
            with contextlib.suppress(RunnerUnavailable, TimeoutError):
                await self.interrupt()
                await asyncio.wait_for(self._drain_to_result(), CLOSE_WAIT_SECONDS)
        self._connection.close()

    async def __aenter__(self) -> RunHandle:
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        await self.close()

    async def _send(self, frame: protocol.Message) -> None:
        """Best effort: a write fails only once the runner stopped reading, because the
        run is over or the runner is gone, and `events()` tells which."""
        if self._result is not None or self._write_failed:
            return
        async with self._write_lock:
            try:
                await self._connection.write_frame(frame)
            except OSError:
                self._write_failed = True


class RunnerClient:
    def __init__(self, socket_path: Path) -> None:
        self.socket_path = socket_path

    async def _connect(self) -> FrameConnection:
        path = str(self.socket_path)
        if len(path.encode()) > MAX_SOCKET_PATH_BYTES:
            raise RunnerUnavailable(f"socket path is too long for a unix socket: {path}")
        try:
            return await FrameConnection.open(path)
        except OSError as exc:
            raise RunnerUnavailable(f"cannot connect to the runner at {path}: {exc}") from exc

    async def ping(self) -> protocol.Message:
        connection = await self._connect()
        try:
            await connection.write_frame({"op": protocol.OP_PING})
            frame = await connection.read_frame()
        except (OSError, protocol.ProtocolError) as exc:
            raise RunnerUnavailable(f"runner did not answer: {exc}") from exc
        finally:
            connection.close()
        if frame is None or frame["op"] != protocol.OP_PONG:
            raise RunnerUnavailable("runner did not answer the ping")
        return frame

    async def exchange(self, request: protocol.Message, wait_seconds: float) -> protocol.Message:
        """One request, one reply (apps); RunnerUnavailable when no reply comes in time."""
        connection = await self._connect()
        try:
            await connection.write_frame(request)
            reply = await asyncio.wait_for(connection.read_frame(), wait_seconds)
        except (OSError, protocol.ProtocolError, TimeoutError) as exc:
            raise RunnerUnavailable(f"runner did not answer {request['op']}: {exc!r}") from exc
        finally:
            connection.close()
        if reply is None:
            raise RunnerUnavailable(
                f"the runner closed the connection before answering {request['op']}"
            )
        return reply

    # The agent's contract names the bound `timeout`; asyncio.timeout would wrap the loop.
    async def wait_ready(self, timeout: float) -> None:  # noqa: ASYNC109
        """Return once the runner answers a ping; RunnerUnavailable after `timeout` seconds.

        The runner binds its socket first thing and answers once it serves: a ping
        that connects waits for that, so polling only covers the interpreter's start."""
        loop = asyncio.get_running_loop()
        deadline = loop.time() + timeout
        slow_from = loop.time() + READY_POLL_FAST_FOR_SECONDS
        delay = READY_POLL_SECONDS
        while True:
            try:
                await asyncio.wait_for(self.ping(), max(deadline - loop.time(), 0.001))
                return
            except (RunnerUnavailable, TimeoutError) as exc:
                last_error = exc
            if loop.time() + delay > deadline:
                raise RunnerUnavailable(
                    f"runner not ready after {timeout:g}s: {last_error}"
                ) from last_error
            await asyncio.sleep(delay)
            if loop.time() > slow_from:
                delay = min(delay * 2, READY_POLL_MAX_SECONDS)

    async def start_run(self, spec: RunSpec) -> RunHandle:
        """Start a run; raises RunnerBusy or RunnerUnavailable."""
        connection = await self._connect()
        request = {
            "op": protocol.OP_RUN,
            "mode": spec.mode,
            "code": spec.code,
            "build_command": spec.build_command,
            "timeout": spec.timeout,
            "environ": spec.environ,
        }
        try:
            await connection.write_frame(request)
            reply = await connection.read_frame()
        except (OSError, protocol.ProtocolError) as exc:
            connection.close()
            raise RunnerUnavailable(f"runner connection failed: {exc}") from exc
        except BaseException:
            connection.close()
            raise
        if reply is not None and reply["op"] == protocol.OP_ACCEPTED:
            return RunHandle(str(reply["run_id"]), connection)
        connection.close()
        if reply is not None and reply["op"] == protocol.OP_BUSY:
            raise RunnerBusy(str(reply.get("message") or "another run is in progress"))
        raise RunnerUnavailable("the runner did not accept the run")
