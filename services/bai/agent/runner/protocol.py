"""The runner's wire protocol, shared by the runner (inside the sandbox) and the
agent's client. Stdlib only and python3.9-compatible.

A frame is a 4-byte big-endian length followed by that many bytes of UTF-8
JSON: one object with an "op" field. Byte payloads travel base64-encoded in
"data". One connection carries one exchange:

    client -> runner: ping                      runner -> client: pong
    client -> runner: run {mode, code, build_command, timeout, environ}
                      runner -> client: busy {message}  (another run is going; closes)
                                        accepted {run_id}
    then, in any order until the result:
    client -> runner: stdin {data, eof} | interrupt
    runner -> client: output {stream, data, seq} | waiting_input {prompt, is_password}
    runner -> client: result {status, exit_code, files, message}   (last frame)

or, for apps (service ports), one request and one reply, beside any run:

    client -> runner: service_start {name, ports, environ, arguments, timeout}
                      runner -> client: service {name, running, already_running}
                                        | service_failed {name, message}
    client -> runner: service_stop {name}
                      runner -> client: service {name, running: false, was_running}

Closing the connection before the result interrupts the run. After the
result the runner reads and drops what the client still sends, until the
client closes: a late write (the end of stdin) never meets a closed socket.
"""

from __future__ import annotations

import base64
import json
import struct

# typing stays out of the runner's start (milliseconds before it listens); mypy reads
# any TYPE_CHECKING as true.
TYPE_CHECKING = False
if TYPE_CHECKING:
    from typing import Any

    Message = dict[str, Any]

VERSION = 1
HEADER = struct.Struct(">I")
# Large enough for any chunk either side writes; a bigger length means garbage.
MAX_FRAME_BYTES = 16 * 1024 * 1024
# Byte payloads are split into pieces of at most this size (well inside a frame).
DATA_CHUNK_BYTES = 1024 * 1024

OP_PING = "ping"
OP_PONG = "pong"
OP_RUN = "run"
OP_BUSY = "busy"
OP_ACCEPTED = "accepted"
OP_STDIN = "stdin"
OP_INTERRUPT = "interrupt"
OP_OUTPUT = "output"
OP_WAITING_INPUT = "waiting_input"
OP_RESULT = "result"
OP_SERVICE_START = "service_start"
OP_SERVICE_STOP = "service_stop"
OP_SERVICE = "service"
OP_SERVICE_FAILED = "service_failed"

MODE_QUERY = "query"
MODE_BATCH = "batch"

STATUS_FINISHED = "finished"
STATUS_TIMED_OUT = "timed_out"
STATUS_INTERRUPTED = "interrupted"
STATUS_FAILED = "failed"


class ProtocolError(Exception):
    """The peer sent something that is not a frame of this protocol."""


def encode_frame(message: Message) -> bytes:
    body = json.dumps(message, separators=(",", ":")).encode("utf-8")
    return HEADER.pack(len(body)) + body


def frame_length(header: bytes) -> int:
    (length,) = HEADER.unpack(header)
    if length > MAX_FRAME_BYTES:
        raise ProtocolError(f"frame of {length} bytes is too large")
    return int(length)


def decode_body(body: bytes) -> Message:
    try:
        message = json.loads(body.decode("utf-8"))
    except ValueError as exc:
        raise ProtocolError(f"frame is not JSON: {exc}") from exc
    if not isinstance(message, dict) or not isinstance(message.get("op"), str):
        raise ProtocolError("frame has no op")
    return message


def chunks(data: bytes) -> list[bytes]:
    """`data` in pieces that each fit one frame (at least one piece, maybe empty)."""
    size = DATA_CHUNK_BYTES
    return [data[i : i + size] for i in range(0, len(data), size)] or [b""]


def encode_data(data: bytes) -> str:
    return base64.b64encode(data).decode("ascii")


def decode_data(message: Message) -> bytes:
    raw = message.get("data") or ""
    try:
        return base64.b64decode(raw, validate=True)
    except ValueError as exc:
        raise ProtocolError("bad base64 data") from exc


def read_frame_sync(stream: Any) -> Message | None:
    """Read one frame from a blocking binary file object; None at a clean EOF."""
    header = _read_exactly(stream, HEADER.size)
    if header is None:
        return None
    body = _read_exactly(stream, frame_length(header))
    if body is None:
        raise ProtocolError("connection closed inside a frame")
    return decode_body(body)


def _read_exactly(stream: Any, size: int) -> bytes | None:
    chunks = []
    remaining = size
    while remaining:
        chunk = stream.read(remaining)
        if not chunk:
            if remaining == size:
                return None
            raise ProtocolError("connection closed inside a frame")
        chunks.append(chunk)
        remaining -= len(chunk)
    return b"".join(chunks)
