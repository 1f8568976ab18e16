"""A byte range of a file to a client's socket with sendfile(2), off the event loop.

Bytes go from the page cache to the socket without passing through Python:
measured on our 2-core machine, a direct download went from about 2.5 to
3.1-4.0 GB/s and the proxy's CPU per GiB through Envoy from 0.34 to 0.19 s
(Envoy, not the proxy, then bounds the rate). uvloop (which
our services run on) has no loop.sendfile, and asyncio's would run on the
loop, where a read that misses the page cache stalls every connection. So
each transfer gets its own thread: it waits for the socket to take more with
poll(2) and sends with sendfile(2), on duplicates of both descriptors, so that
the handler may close its own whenever it likes.
"""

from __future__ import annotations

import asyncio
import os
import select
import threading

# One sendfile call moves at most this much, so a stop is seen between calls.
STEP_BYTES = 16 << 20
# How long one wait for a full socket lasts before the thread looks at `stop`.
POLL_MS = 500
# How often the transport's own buffer is looked at before the first byte.
FLUSH_POLL_S = 0.002


class FileShrankError(RuntimeError):
    """The file ended before the range did (truncated while being sent)."""


def _send(sock_fd: int, file_fd: int, offset: int, count: int, stop: threading.Event) -> int:
    """Bytes of [offset, offset + count) of `file_fd` written to `sock_fd` until
    done, the file ends or `stop` is set; a dead peer raises ConnectionError."""
    poller = select.poll()
    poller.register(sock_fd, select.POLLOUT)
    at, end = offset, offset + count
    while at < end and not stop.is_set():
        if not poller.poll(POLL_MS):
            continue
        try:
            sent = os.sendfile(sock_fd, file_fd, at, min(STEP_BYTES, end - at))
        except BlockingIOError:
            continue
        if sent == 0:
            break
        at += sent
    return at - offset


async def _flushed(transport: asyncio.WriteTransport) -> None:
    """Until what the transport holds (the headers) is in the socket, so that the
    file's bytes follow it rather than overtake it."""
    while transport.get_write_buffer_size():
        if transport.is_closing():
            raise ConnectionResetError("the client went away")
        await asyncio.sleep(FLUSH_POLL_S)


async def send_span(
    transport: asyncio.WriteTransport, file_fd: int, offset: int, count: int
) -> bool:
    """Send [offset, offset + count) of `file_fd` on `transport`'s socket.

    False: the transport has no socket to send on (the caller writes the bytes
    itself); raises ConnectionError when the client goes away and
    FileShrankError when the file ends early. Cancelled, the thread stops
    within POLL_MS and closes its descriptors itself.
    """
    sock = transport.get_extra_info("socket")
    if sock is None:
        return False
    await _flushed(transport)
    loop = asyncio.get_running_loop()
    done: asyncio.Future[int] = loop.create_future()
    stop = threading.Event()
    sock_fd, own_fd = os.dup(sock.fileno()), os.dup(file_fd)

    def settle(sent: int, error: BaseException | None) -> None:
        if done.done():
            return
        if error is not None:
            done.set_exception(error)
        else:
            done.set_result(sent)

    def run() -> None:
        sent, error = 0, None
        try:
            sent = _send(sock_fd, own_fd, offset, count, stop)
        except BaseException as exc:  # handed to the awaiting coroutine
            error = exc
        finally:
            os.close(sock_fd)
            os.close(own_fd)
        try:
            loop.call_soon_threadsafe(settle, sent, error)
        except RuntimeError:  # the loop closed meanwhile: nobody is waiting
            pass

    threading.Thread(target=run, name="sendfile", daemon=True).start()
    try:
        sent = await asyncio.shield(done)
    finally:
        stop.set()
    if sent < count:
        raise FileShrankError(f"the file ended {count - sent} bytes before the range did")
    return True
