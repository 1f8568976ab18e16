#!/usr/bin/env python3
"""A byte origin for reference transfers: it moves bytes and does nothing else.

GET sends FILE with sendfile (no copy through Python); PUT reads the body and
drops it, then answers its length. bench/storage.py puts a bare Envoy in front
of it to measure what Envoy and the client alone reach on this machine.

    python bench/byte_origin.py PORT FILE
"""

from __future__ import annotations

import asyncio
import sys
from pathlib import Path

READ = 1 << 20


async def _headers(reader: asyncio.StreamReader) -> tuple[str, dict[str, str]] | None:
    request_line = await reader.readline()
    if not request_line:
        return None
    headers: dict[str, str] = {}
    while (line := await reader.readline()) not in (b"\r\n", b""):
        name, _, value = line.decode("latin-1").partition(":")
        headers[name.strip().lower()] = value.strip()
    return request_line.decode("latin-1").split(" ", 1)[0], headers


def _reply(writer: asyncio.StreamWriter, length: int, body: bytes = b"") -> None:
    head = f"HTTP/1.1 200 OK\r\ncontent-length: {length}\r\n\r\n"
    writer.write(head.encode() + body)


async def serve(
    reader: asyncio.StreamReader, writer: asyncio.StreamWriter, path: Path, size: int
) -> None:
    loop = asyncio.get_running_loop()
    while (request := await _headers(reader)) is not None:
        method, headers = request
        if method == "PUT":
            left = int(headers.get("content-length", "0"))
            while left:
                chunk = await reader.read(min(READ, left))
                if not chunk:
                    return
                left -= len(chunk)
            body = str(int(headers.get("content-length", "0"))).encode()
            _reply(writer, len(body), body)
        else:
            _reply(writer, size)
            await writer.drain()
            with path.open("rb") as f:
                await loop.sendfile(writer.transport, f)
        await writer.drain()


async def main(port: int, path: Path, size: int) -> None:
    server = await asyncio.start_server(
        lambda r, w: serve(r, w, path, size), "127.0.0.1", port, limit=READ
    )
    async with server:
        await server.serve_forever()


if __name__ == "__main__":
    served = Path(sys.argv[2])
    # The file does not change while it is served.
    asyncio.run(main(int(sys.argv[1]), served, served.stat().st_size))
