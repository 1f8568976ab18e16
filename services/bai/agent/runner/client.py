"""The agent's side of the runner protocol (asyncio).

One `RunnerClient` per kernel, pointed at the runner's socket in the kernel's
run directory on the host. Each run is one connection; the runner answers
"busy" while another run is going, and closing a handle before its result
interrupts the run.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Literal

from . import protocol

# sockaddr_un.sun_path holds 108 bytes including the terminating NUL.
MAX_SOCKET_PATH_BYTES = 107
READY_POLL_INITIAL_SECONDS = 0.02
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


async def _read_frame(reader: asyncio.StreamReader) -> protocol.Message | None:
    """The next frame; None at a clean end of stream."""
    try:
        header = await reader.readexactly(protocol.HEADER.size)
    except asyncio.IncompleteReadError as exc:
        if exc.partial:
            raise protocol.ProtocolError("connection closed inside a frame") from exc
        return None
    try:
        body = await reader.readexactly(protocol.frame_length(header))
    except asyncio.IncompleteReadError as exc:
        raise protocol.ProtocolError("connection closed inside a frame") from exc
    return protocol.decode_body(body)


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

    def __init__(
        self, run_id: str, reader: asyncio.StreamReader, writer: asyncio.StreamWriter
    ) -> None:
        self.run_id = run_id
        self._reader = reader
        self._writer = writer
        self._write_lock = asyncio.Lock()
        self._result: RunResult | None = None
        self._reading = False

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
                    frame = await _read_frame(self._reader)
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
        if self._writer.is_closing():
            return
        if self._result is None and not self._reading:
            # Wait (briefly) for the interrupted run to end, so that the kernel is free
            # for the next run once this returns.
            with contextlib.suppress(RunnerUnavailable, TimeoutError):
                await self.interrupt()
                await asyncio.wait_for(self._drain_to_result(), CLOSE_WAIT_SECONDS)
        self._writer.close()
        with contextlib.suppress(OSError):
            await self._writer.wait_closed()

    async def __aenter__(self) -> RunHandle:
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        await self.close()

    async def _send(self, frame: protocol.Message) -> None:
        if self._result is not None:
            return
        async with self._write_lock:
            try:
                self._writer.write(protocol.encode_frame(frame))
                await self._writer.drain()
            except OSError as exc:
                raise RunnerUnavailable(f"runner connection failed: {exc}") from exc


class RunnerClient:
    def __init__(self, socket_path: Path) -> None:
        self.socket_path = socket_path

    async def _connect(self) -> tuple[asyncio.StreamReader, asyncio.StreamWriter]:
        path = str(self.socket_path)
        if len(path.encode()) > MAX_SOCKET_PATH_BYTES:
            raise RunnerUnavailable(f"socket path is too long for a unix socket: {path}")
        try:
            return await asyncio.open_unix_connection(path)
        except OSError as exc:
            raise RunnerUnavailable(f"cannot connect to the runner at {path}: {exc}") from exc

    async def ping(self) -> protocol.Message:
        reader, writer = await self._connect()
        try:
            writer.write(protocol.encode_frame({"op": protocol.OP_PING}))
            await writer.drain()
            frame = await _read_frame(reader)
        except (OSError, protocol.ProtocolError) as exc:
            raise RunnerUnavailable(f"runner did not answer: {exc}") from exc
        finally:
            writer.close()
        if frame is None or frame["op"] != protocol.OP_PONG:
            raise RunnerUnavailable("runner did not answer the ping")
        return frame

    # The agent's contract names the bound `timeout`; asyncio.timeout would wrap the loop.
    async def wait_ready(self, timeout: float) -> None:  # noqa: ASYNC109
        """Return once the runner answers a ping; RunnerUnavailable after `timeout` seconds."""
        loop = asyncio.get_running_loop()
        deadline = loop.time() + timeout
        delay = READY_POLL_INITIAL_SECONDS
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
            delay = min(delay * 2, READY_POLL_MAX_SECONDS)

    async def start_run(self, spec: RunSpec) -> RunHandle:
        """Start a run; raises RunnerBusy or RunnerUnavailable."""
        reader, writer = await self._connect()
        request = {
            "op": protocol.OP_RUN,
            "mode": spec.mode,
            "code": spec.code,
            "build_command": spec.build_command,
            "timeout": spec.timeout,
            "environ": spec.environ,
        }
        try:
            writer.write(protocol.encode_frame(request))
            await writer.drain()
            reply = await _read_frame(reader)
        except (OSError, protocol.ProtocolError) as exc:
            writer.close()
            raise RunnerUnavailable(f"runner connection failed: {exc}") from exc
        if reply is not None and reply["op"] == protocol.OP_ACCEPTED:
            return RunHandle(str(reply["run_id"]), reader, writer)
        writer.close()
        if reply is not None and reply["op"] == protocol.OP_BUSY:
            raise RunnerBusy(str(reply.get("message") or "another run is in progress"))
        raise RunnerUnavailable("the runner did not accept the run")
