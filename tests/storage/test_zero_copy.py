"""zero_copy.send_span against real sockets, on uvloop (what the proxy runs) and asyncio."""

from __future__ import annotations

import asyncio
import os
import socket
from collections.abc import AsyncIterator, Callable, Coroutine
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

import pytest
import uvloop

from bai.storage.http import zero_copy
from bai.storage.http.zero_copy import FileShrankError, send_span

LOOPS = {"uvloop": uvloop.new_event_loop, "asyncio": asyncio.new_event_loop}


def run_on(loop_name: str, main: Callable[[], Coroutine[Any, Any, None]]) -> None:
    loop = LOOPS[loop_name]()
    try:
        loop.run_until_complete(main())
    finally:
        loop.close()


def open_fds() -> set[str]:
    return set(os.listdir("/proc/self/fd"))


@asynccontextmanager
async def connected(path: Path) -> AsyncIterator[tuple[asyncio.Transport, socket.socket, int]]:
    """A transport on one end of a socket pair, the other end (non-blocking) and
    `path` opened for reading; all closed after the block."""
    ours, theirs = socket.socketpair()
    theirs.setblocking(False)
    transport, _ = await asyncio.get_running_loop().connect_accepted_socket(asyncio.Protocol, ours)
    fd = os.open(path, os.O_RDONLY)
    try:
        yield transport, theirs, fd
    finally:
        os.close(fd)
        transport.close()
        theirs.close()


async def read_exactly(sock: socket.socket, n: int) -> bytes:
    loop = asyncio.get_running_loop()
    got = bytearray()
    while len(got) < n:
        chunk = await loop.sock_recv(sock, min(1 << 20, n - len(got)))
        if not chunk:
            break
        got += chunk
    return bytes(got)


@pytest.fixture
def data_file(tmp_path: Path) -> tuple[Path, bytes]:
    data = os.urandom(24 << 20)  # several times a socket's buffer
    path = tmp_path / "data.bin"
    path.write_bytes(data)
    return path, data


@pytest.mark.parametrize("loop_name", LOOPS)
def test_a_range_follows_the_headers_byte_for_byte(
    loop_name: str, data_file: tuple[Path, bytes], monkeypatch: pytest.MonkeyPatch
) -> None:
    path, data = data_file
    # Small steps, so that the range takes many sendfile calls.
    monkeypatch.setattr(zero_copy, "STEP_BYTES", 1 << 20)
    start, count = 12345, len(data) - 20000
    headers = b"HTTP/1.1 200 OK\r\n" + b"x" * (1 << 20) + b"\r\n\r\n"

    async def main() -> None:
        async with connected(path) as (transport, theirs, fd):
            # Headers bigger than the socket takes at once: they wait in the
            # transport, and the file's bytes must not overtake them.
            transport.write(headers)
            sending = asyncio.create_task(send_span(transport, fd, start, count))
            got = await read_exactly(theirs, len(headers) + count)
            assert await sending is True
        assert got[: len(headers)] == headers
        assert got[len(headers) :] == data[start : start + count]

    run_on(loop_name, main)


@pytest.mark.parametrize("loop_name", LOOPS)
def test_a_file_shorter_than_the_range_is_an_error(loop_name: str, tmp_path: Path) -> None:
    path = tmp_path / "short.bin"
    path.write_bytes(b"abc")

    async def main() -> None:
        async with connected(path) as (transport, theirs, fd):
            with pytest.raises(FileShrankError, match="7 bytes before"):
                await send_span(transport, fd, 0, 10)
            assert await read_exactly(theirs, 3) == b"abc"

    run_on(loop_name, main)


@pytest.mark.parametrize("loop_name", LOOPS)
def test_a_peer_that_goes_away_ends_the_send_and_its_descriptors(
    loop_name: str, data_file: tuple[Path, bytes]
) -> None:
    path, data = data_file

    async def main() -> None:
        async with connected(path) as (transport, theirs, fd):
            before = open_fds()
            sending = asyncio.create_task(send_span(transport, fd, 0, len(data)))
            await read_exactly(theirs, 1 << 20)
            theirs.close()
            with pytest.raises(ConnectionError):
                await asyncio.wait_for(sending, 10)
            assert open_fds() <= before  # no descriptor of the thread's is left

    run_on(loop_name, main)


@pytest.mark.parametrize("loop_name", LOOPS)
def test_cancelled_the_thread_stops_and_closes_its_descriptors(
    loop_name: str, data_file: tuple[Path, bytes]
) -> None:
    path, data = data_file

    async def main() -> None:
        async with connected(path) as (transport, _, fd):
            before = open_fds()
            # Nobody reads: the socket fills and the thread waits in poll.
            sending = asyncio.create_task(send_span(transport, fd, 0, len(data)))
            await asyncio.sleep(0.2)
            sending.cancel()
            with pytest.raises(asyncio.CancelledError):
                await sending
            for _ in range(100):  # within POLL_MS
                if open_fds() <= before:
                    break
                await asyncio.sleep(0.02)
            assert open_fds() <= before  # the thread closed its two duplicates

    run_on(loop_name, main)
