"""Following session events across dropped connections.

    from bai.client import Client, watch_events

    with Client.from_env() as client:
        for event in watch_events(client, session_id):
            print(event.cursor, event.type, event.session_status)

``SessionService.WatchEvents`` gives each event a cursor and replays the events
after a cursor passed back in. :func:`watch_events` keeps the last cursor it
saw (keepalives included) and, when the stream fails with UNAVAILABLE (manager
restarted, proxy dropped the connection), reconnects with backoff and resumes
after that cursor, so the caller sees every event once and in order. The
backoff restarts after each event that arrives; a server that stays away longer
than the policy allows ends the iteration with the last error. Other errors
(CURSOR_EXPIRED, NOT_FOUND, ...) end it at once. The iteration ends when the
server ends the stream (the watched session reached a terminal status).
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator, Iterator
from typing import TypeAlias, overload

from bai.api.manager.v1 import session_pb2
from bai.client import errors
from bai.client._client import AsyncClient, Client
from bai.client._requests import enum_value
from bai.client._transport import Metadata
from bai.client.retry import RetryPolicy

RECONNECT = RetryPolicy(max_attempts=10, initial_backoff=0.2, max_backoff=5.0, deadline=120.0)
"""Default reconnect policy: about two minutes of retries per outage."""

SessionEventScope: TypeAlias = session_pb2.SessionEventScope.ValueType
KEEPALIVE = session_pb2.SESSION_EVENT_TYPE_KEEPALIVE


class _Resume:
    """The cursor to resume from and the backoff state of the current outage."""

    def __init__(self, cursor: str, policy: RetryPolicy) -> None:
        self.cursor = cursor
        self.policy = policy
        self.failures = 0
        self.outage_started = 0.0

    def request(
        self, session_id: str, project_id: str, scope: SessionEventScope | str
    ) -> session_pb2.WatchEventsRequest:
        return session_pb2.WatchEventsRequest(
            session_id=session_id,
            project_id=project_id,
            cursor=self.cursor,
            scope=enum_value(session_pb2.SessionEventScope.DESCRIPTOR, scope),  # type: ignore[arg-type]
        )

    def seen(self, event: session_pb2.SessionEvent) -> None:
        if event.cursor:
            self.cursor = event.cursor
        self.failures = 0

    def backoff(self, exc: errors.BaiError) -> float:
        """Seconds to wait before reconnecting; re-raises ``exc`` when it is final."""
        now = time.monotonic()
        if self.failures == 0:
            self.outage_started = now
        self.failures += 1
        if not self.policy.should_retry(exc.code, self.failures):
            raise exc
        wait = self.policy.backoff(self.failures)
        deadline = self.policy.deadline
        if deadline is not None and now - self.outage_started + wait > deadline:
            raise exc
        return wait


def _watch_sync(
    client: Client,
    session_id: str,
    project_id: str,
    scope: SessionEventScope | str,
    resume: _Resume,
    include_keepalive: bool,
    metadata: Metadata,
) -> Iterator[session_pb2.SessionEvent]:
    while True:
        request = resume.request(session_id, project_id, scope)
        try:
            for response in client.sessions.watch_events(request, metadata=metadata, retry=False):
                resume.seen(response.event)
                if include_keepalive or response.event.type != KEEPALIVE:
                    yield response.event
            return
        except errors.BaiError as exc:
            wait = resume.backoff(exc)
        time.sleep(wait)


async def _watch_async(
    client: AsyncClient,
    session_id: str,
    project_id: str,
    scope: SessionEventScope | str,
    resume: _Resume,
    include_keepalive: bool,
    metadata: Metadata,
) -> AsyncIterator[session_pb2.SessionEvent]:
    while True:
        request = resume.request(session_id, project_id, scope)
        try:
            stream = client.sessions.watch_events(request, metadata=metadata, retry=False)
            async for response in stream:
                resume.seen(response.event)
                if include_keepalive or response.event.type != KEEPALIVE:
                    yield response.event
            return
        except errors.BaiError as exc:
            wait = resume.backoff(exc)
        await asyncio.sleep(wait)


@overload
def watch_events(
    client: Client,
    session_id: str = ...,
    *,
    cursor: str = ...,
    project_id: str = ...,
    scope: SessionEventScope | str = ...,
    include_keepalive: bool = ...,
    reconnect: RetryPolicy = ...,
    metadata: Metadata = ...,
) -> Iterator[session_pb2.SessionEvent]: ...


@overload
def watch_events(
    client: AsyncClient,
    session_id: str = ...,
    *,
    cursor: str = ...,
    project_id: str = ...,
    scope: SessionEventScope | str = ...,
    include_keepalive: bool = ...,
    reconnect: RetryPolicy = ...,
    metadata: Metadata = ...,
) -> AsyncIterator[session_pb2.SessionEvent]: ...


def watch_events(
    client: Client | AsyncClient,
    session_id: str = "",
    *,
    cursor: str = "",
    project_id: str = "",
    scope: SessionEventScope | str = session_pb2.SESSION_EVENT_SCOPE_UNSPECIFIED,
    include_keepalive: bool = False,
    reconnect: RetryPolicy = RECONNECT,
    metadata: Metadata = (),
) -> Iterator[session_pb2.SessionEvent] | AsyncIterator[session_pb2.SessionEvent]:
    """Events of one session (or all the caller may see), resumed across reconnects.

    ``cursor``: start after this event (empty: from now). ``scope``: "session",
    "kernel" or both (default). Keepalives are consumed (their cursors kept)
    unless ``include_keepalive``. ``reconnect`` bounds the retries of one outage.
    """
    resume = _Resume(cursor, reconnect)
    if isinstance(client, AsyncClient):
        return _watch_async(
            client, session_id, project_id, scope, resume, include_keepalive, metadata
        )
    return _watch_sync(client, session_id, project_id, scope, resume, include_keepalive, metadata)
