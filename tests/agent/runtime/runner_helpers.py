"""Driving one run of the kernel runner to its end, for the runner tests, and a
runner stand-in that stops reading once it sent its result."""

from __future__ import annotations

import asyncio
import socket
import threading
from collections.abc import Iterator
from contextlib import contextmanager, suppress
from dataclasses import dataclass, field
from pathlib import Path

from bai.agent.runner import protocol
from bai.agent.runner.client import (
    RunnerClient,
    RunOutput,
    RunResult,
    RunSpec,
    RunWaitingInput,
)

IDLE_POLL_SECONDS = 0.01


@dataclass
class Transcript:
    outputs: list[RunOutput] = field(default_factory=list)
    prompts: list[RunWaitingInput] = field(default_factory=list)
    result: RunResult | None = None

    def text(self, stream: str) -> str:
        return b"".join(o.data for o in self.outputs if o.stream == stream).decode()

    def all_text(self) -> str:
        return b"".join(o.data for o in self.outputs).decode()


async def run(
    client: RunnerClient, spec: RunSpec, answers: list[bytes] | None = None
) -> Transcript:
    """One run to its result; each input request is answered with the next answer."""
    transcript = Transcript()
    pending = list(answers or [])
    handle = await client.start_run(spec)
    async with handle:
        async for event in handle.events():
            if isinstance(event, RunOutput):
                transcript.outputs.append(event)
            elif isinstance(event, RunWaitingInput):
                transcript.prompts.append(event)
                await handle.send_stdin(pending.pop(0), eof=not pending)
            else:
                transcript.result = event
    return transcript


async def until_idle(client: RunnerClient) -> None:
    """Until the runner reports no run in progress (the last one has sent its result)."""
    while True:
        pong = await client.ping()
        if not pong["busy"]:
            return
        await asyncio.sleep(IDLE_POLL_SECONDS)


def write_after_the_result(socket_path: Path) -> tuple[list[protocol.Message], bytes]:
    """A batch run over a plain socket: read to its result, then write the end of stdin,
    close the writing side and read what is left (b"" from a runner that reads on)."""
    with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as sock:
        sock.connect(str(socket_path))
        run_request = {"op": protocol.OP_RUN, "mode": "batch", "code": "echo done"}
        sock.sendall(protocol.encode_frame(run_request))
        frames: list[protocol.Message] = []
        with sock.makefile("rb") as rfile:
            while not frames or frames[-1]["op"] != protocol.OP_RESULT:
                frame = protocol.read_frame_sync(rfile)
                assert frame is not None
                frames.append(frame)
            sock.sendall(protocol.encode_frame({"op": protocol.OP_STDIN, "data": "", "eof": True}))
            sock.shutdown(socket.SHUT_WR)
            # A runner that dropped the frame unread would reset the connection here.
            return frames, rfile.read()


@contextmanager
def runner_that_stops_reading(
    path: Path, frames: list[protocol.Message]
) -> Iterator[threading.Event]:
    """A runner stand-in on `path` for one run: it accepts, sends `frames`, then shuts
    its reading side, as runners before the fix did right after the result. The event
    is set once that is done; the connection stays open until the context ends."""
    listener = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    listener.bind(str(path))
    listener.listen(1)
    replied, released = threading.Event(), threading.Event()

    def serve() -> None:
        try:
            sock, _ = listener.accept()
        except OSError:
            return
        with sock, sock.makefile("rb") as rfile:
            protocol.read_frame_sync(rfile)
            accepted = {"op": protocol.OP_ACCEPTED, "run_id": "r1"}
            sock.sendall(b"".join(protocol.encode_frame(f) for f in [accepted, *frames]))
            sock.shutdown(socket.SHUT_RD)
            replied.set()
            released.wait()

    server = threading.Thread(target=serve, daemon=True)
    server.start()
    try:
        yield replied
    finally:
        released.set()
        # Wakes an accept still waiting (the client never came).
        with suppress(OSError):
            listener.shutdown(socket.SHUT_RDWR)
        listener.close()
        server.join()
