"""The kernel's intrinsic terminal app: a login shell in a pty over a WebSocket, spoken
the way ttyd speaks it, so ttyd's clients work. Stdlib only, python3.9-compatible.

Debian has no ttyd package, so this stands in for it. The runner starts it as the
kernel's user with its source on stdin (`python3 - --port N`): the runner's own
directory may not be readable by that user. Per connection: the client's first
message is JSON ({"AuthToken", "columns", "rows"}); then '0'+input and
'1'+{"columns","rows"} (resize) arrive, and '0'+output leaves as binary frames.
The page at / loads xterm.js from a CDN; /token answers ttyd's token request.
"""

from __future__ import annotations

import argparse
import base64
import fcntl
import hashlib
import json
import os
import pty
import select
import signal
import socket
import socketserver
import struct
import termios
import threading
from collections.abc import Iterator

# typing stays out of the terminal's start; mypy reads any TYPE_CHECKING as true.
TYPE_CHECKING = False
if TYPE_CHECKING:
    from io import BufferedIOBase

WS_GUID = "258EAFA5-E914-47DA-95CA-C5AB0DC85B11"
OP_CONTINUATION, OP_TEXT, OP_BINARY, OP_CLOSE, OP_PING, OP_PONG = 0, 1, 2, 8, 9, 10
MAX_MESSAGE_BYTES = 1024 * 1024
READ_BYTES = 65536
PAGE = b"""<!doctype html><html><head><meta charset="utf-8"><title>bai terminal</title>
<link rel="stylesheet" href="https://cdn.jsdelivr.net/npm/@xterm/xterm@5.5.0/css/xterm.css">
<style>html,body,#t{height:100%;margin:0;background:#000}</style></head><body><div id="t"></div>
<script src="https://cdn.jsdelivr.net/npm/@xterm/xterm@5.5.0/lib/xterm.js"></script>
<script>
const term = new Terminal(); term.open(document.getElementById("t"));
const url = location.href.replace(/^http/, "ws").replace(/\\/?(\\?.*)?$/, "/ws");
const ws = new WebSocket(url, ["tty"]); ws.binaryType = "arraybuffer";
const enc = new TextEncoder(), dec = new TextDecoder();
ws.onopen = () => ws.send(enc.encode(JSON.stringify(
  {AuthToken: "", columns: term.cols, rows: term.rows})));
ws.onmessage = (e) => { const d = new Uint8Array(e.data);
  if (d[0] === 48) term.write(dec.decode(d.slice(1))); };
term.onData((s) => ws.send(enc.encode("0" + s)));
</script></body></html>"""


def accept_key(key: str) -> str:
    digest = hashlib.sha1((key + WS_GUID).encode("ascii")).digest()
    return base64.b64encode(digest).decode("ascii")


def encode_frame(opcode: int, payload: bytes) -> bytes:
    size = len(payload)
    if size < 126:
        header = struct.pack("!BB", 0x80 | opcode, size)
    elif size < 65536:
        header = struct.pack("!BBH", 0x80 | opcode, 126, size)
    else:
        header = struct.pack("!BBQ", 0x80 | opcode, 127, size)
    return header + payload


def read_exactly(stream: BufferedIOBase, size: int) -> bytes:
    data = stream.read(size)
    if len(data) != size:
        raise EOFError("connection closed")
    return bytes(data)


def read_frame(stream: BufferedIOBase) -> tuple[bool, int, bytes]:
    """(final, opcode, unmasked payload) of one frame."""
    first, second = read_exactly(stream, 2)
    size = second & 0x7F
    if size == 126:
        (size,) = struct.unpack("!H", read_exactly(stream, 2))
    elif size == 127:
        (size,) = struct.unpack("!Q", read_exactly(stream, 8))
    if size > MAX_MESSAGE_BYTES:
        raise EOFError("frame too large")
    mask = read_exactly(stream, 4) if second & 0x80 else b""
    payload = read_exactly(stream, size)
    if mask:
        payload = bytes(byte ^ mask[index % 4] for index, byte in enumerate(payload))
    return bool(first & 0x80), first & 0x0F, payload


class Session:
    """One browser connection: a shell in a pty, until either side ends."""

    def __init__(self, sock: socket.socket, stream: BufferedIOBase, shell: str) -> None:
        self.sock = sock
        self.stream = stream
        self.shell = shell
        self.send_lock = threading.Lock()
        self.pid = 0
        self.fd = -1

    def send(self, opcode: int, payload: bytes) -> None:
        with self.send_lock:
            self.sock.sendall(encode_frame(opcode, payload))

    def messages(self) -> Iterator[bytes]:
        pieces: list[bytes] = []
        while True:
            final, opcode, payload = read_frame(self.stream)
            if opcode == OP_CLOSE:
                self.send(OP_CLOSE, payload[:2])
                return
            if opcode == OP_PING:
                self.send(OP_PONG, payload)
                continue
            if opcode == OP_PONG:
                continue
            pieces.append(payload)
            if final:
                yield b"".join(pieces)
                pieces = []

    def spawn(self, columns: int, rows: int) -> None:
        self.pid, self.fd = pty.fork()
        if self.pid == 0:
            os.environ["TERM"] = "xterm-256color"
            os.chdir(os.environ.get("HOME") or "/")
            os.execvp(self.shell, [self.shell, "-l"])
        self.resize(columns, rows)
        threading.Thread(target=self.pump_output, daemon=True).start()

    def resize(self, columns: int, rows: int) -> None:
        if self.fd >= 0 and columns > 0 and rows > 0:
            fcntl.ioctl(self.fd, termios.TIOCSWINSZ, struct.pack("HHHH", rows, columns, 0, 0))

    def pump_output(self) -> None:
        try:
            while True:
                select.select([self.fd], [], [])
                data = os.read(self.fd, READ_BYTES)
                if not data:
                    break
                self.send(OP_BINARY, b"0" + data)
        except OSError:
            pass
        try:
            self.send(OP_CLOSE, struct.pack("!H", 1000))
            self.sock.shutdown(socket.SHUT_RDWR)
        except OSError:
            pass

    def serve(self) -> None:
        try:
            for message in self.messages():
                if self.pid == 0:
                    hello = json.loads(message.decode("utf-8") or "{}")
                    self.spawn(int(hello.get("columns") or 80), int(hello.get("rows") or 24))
                elif message[:1] == b"0":
                    os.write(self.fd, message[1:])
                elif message[:1] == b"1":
                    size = json.loads(message[1:].decode("utf-8"))
                    self.resize(int(size.get("columns") or 0), int(size.get("rows") or 0))
        except (EOFError, OSError, ValueError):
            pass
        finally:
            self.close()

    def close(self) -> None:
        if self.pid > 0:
            try:
                os.kill(self.pid, signal.SIGHUP)
                os.waitpid(self.pid, 0)
            except OSError:
                pass
            self.pid = -1
        if self.fd >= 0:
            os.close(self.fd)
            self.fd = -1


class Handler(socketserver.StreamRequestHandler):
    shell = "/bin/sh"

    def handle(self) -> None:
        request_line = self.rfile.readline(8192).decode("latin-1").split()
        headers = {}
        while True:
            line = self.rfile.readline(8192).decode("latin-1")
            if line in ("\r\n", "\n", ""):
                break
            name, _, value = line.partition(":")
            headers[name.strip().lower()] = value.strip()
        path = request_line[1].split("?")[0] if len(request_line) > 1 else "/"
        if headers.get("upgrade", "").lower() == "websocket" and path.endswith("/ws"):
            self.upgrade(headers)
        elif path.endswith("/token"):
            self.reply("200 OK", "application/json", b'{"token": ""}')
        elif path == "/" or path.endswith("/index.html"):
            self.reply("200 OK", "text/html; charset=utf-8", PAGE)
        else:
            self.reply("404 Not Found", "text/plain", b"not found\n")

    def reply(self, status: str, content_type: str, body: bytes) -> None:
        head = (
            f"HTTP/1.1 {status}\r\nContent-Type: {content_type}\r\n"
            f"Content-Length: {len(body)}\r\nConnection: close\r\n\r\n"
        )
        self.wfile.write(head.encode("latin-1") + body)

    def upgrade(self, headers: dict[str, str]) -> None:
        protocols = [p.strip() for p in headers.get("sec-websocket-protocol", "").split(",")]
        head = (
            "HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
            f"Sec-WebSocket-Accept: {accept_key(headers.get('sec-websocket-key', ''))}\r\n"
        )
        if "tty" in protocols:
            head += "Sec-WebSocket-Protocol: tty\r\n"
        self.wfile.write((head + "\r\n").encode("latin-1"))
        self.wfile.flush()
        Session(self.connection, self.rfile, self.shell).serve()


class Server(socketserver.ThreadingTCPServer):
    allow_reuse_address = True
    daemon_threads = True


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="bai-web-terminal")
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("--shell", default="")
    args = parser.parse_args(argv)
    shell = args.shell or ("/bin/bash" if os.path.exists("/bin/bash") else "/bin/sh")
    Handler.shell = shell
    with Server(("0.0.0.0", args.port), Handler) as server:
        server.serve_forever()
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
