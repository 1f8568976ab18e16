"""Showing a new session's way to RUNNING: one stderr line per status transition.

The transitions come from WatchEvents for the session. Its events start when the
server subscribes the stream, which may be after the first transitions already
happened, and a manager without WatchEvents answers UNIMPLEMENTED; so after a few
quiet seconds (and when the stream cannot be used) GetSession tells the current
status. Waiting ends at RUNNING, at a terminal status or after ``max_wait``.
It runs on an AsyncClient of its own so that the watch can be cancelled cleanly
(a blocking stream cannot be cancelled from the thread reading it).
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Callable
from dataclasses import dataclass

from bai.api.common.v1 import session_pb2 as common_session_pb2
from bai.api.manager.v1 import session_pb2
from bai.client import AsyncClient, Credentials, errors, watch_events
from bai.client._requests import short_enum_name

POLL_AFTER = 3.0
"""Seconds without events after which GetSession is asked."""

TERMINAL = frozenset(
    {
        common_session_pb2.SESSION_STATUS_TERMINATED,
        common_session_pb2.SESSION_STATUS_CANCELLED,
        common_session_pb2.SESSION_STATUS_ERROR,
    }
)
STARTED = frozenset(
    {common_session_pb2.SESSION_STATUS_RUNNING, common_session_pb2.SESSION_STATUS_RUNNING_DEGRADED}
)


def status_name(status: int) -> str:
    return short_enum_name(common_session_pb2.SessionStatus.DESCRIPTOR, status)


def reason_name(reason: int) -> str:
    return short_enum_name(common_session_pb2.LifecycleReason.DESCRIPTOR, reason)


def transition_text(status: int, reason: int = 0, message: str = "") -> str:
    """``"cancelled (image-pull-failed: no such tag)"``."""
    detail = ": ".join(p for p in (reason_name(reason) if reason else "", message) if p)
    return status_name(status) + (f" ({detail})" if detail else "")


@dataclass
class Outcome:
    status: int
    timed_out: bool


class _Progress:
    def __init__(self, session: session_pb2.Session, note: Callable[[str], None]) -> None:
        self.session = session
        self.note = note
        self.status: int = session.status
        self.changed = asyncio.Event()

    def show(self, status: int, reason: int = 0, message: str = "") -> None:
        if status != self.status:
            self.status = status
            self.note(f"session {self.session.name}: {transition_text(status, reason, message)}")
            self.changed.set()

    @property
    def done(self) -> bool:
        return self.status in STARTED or self.status in TERMINAL

    async def watch(self, client: AsyncClient) -> None:
        scope = session_pb2.SESSION_EVENT_SCOPE_SESSION
        with contextlib.suppress(errors.BaiError):  # GetSession polling takes over
            async for event in watch_events(client, self.session.id, scope=scope):
                if event.session_id == self.session.id and event.session_status:
                    self.show(event.session_status, event.reason, event.message)
                if self.done:
                    return
        await asyncio.Event().wait()  # the stream ended; leave the rest to polling

    async def poll(self, client: AsyncClient) -> None:
        while not self.done:
            self.changed.clear()
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self.changed.wait(), POLL_AFTER)
                continue
            current = (await client.sessions.get_session(session_id=self.session.id)).session
            self.show(current.status, current.status_reason, current.status_message)


async def _follow(
    endpoint: str,
    credentials: Credentials | None,
    session: session_pb2.Session,
    max_wait: float | None,
    note: Callable[[str], None],
) -> Outcome:
    progress = _Progress(session, note)
    note(f"session {session.name} ({session.id}): {status_name(session.status)}")
    if progress.done:
        return Outcome(progress.status, False)
    async with AsyncClient(endpoint, credentials) as client:
        watcher = asyncio.create_task(progress.watch(client))
        poller = asyncio.create_task(progress.poll(client))
        try:
            async with asyncio.timeout(max_wait):
                done, _ = await asyncio.wait({watcher, poller}, return_when=asyncio.FIRST_COMPLETED)
                for task in done:
                    task.result()  # a failed GetSession is the command's error
        except TimeoutError:
            return Outcome(progress.status, True)
        finally:
            for task in (watcher, poller):
                task.cancel()
            await asyncio.gather(watcher, poller, return_exceptions=True)
    return Outcome(progress.status, False)


def follow_startup(
    endpoint: str,
    credentials: Credentials | None,
    session: session_pb2.Session,
    *,
    max_wait: float | None,
    note: Callable[[str], None],
) -> Outcome:
    """Print transitions of ``session`` with ``note`` until it runs, ends or ``max_wait``."""
    return asyncio.run(_follow(endpoint, credentials, session, max_wait, note))
