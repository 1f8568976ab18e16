"""The outbox: events for the manager, numbered 1, 2, 3, ... per boot_id.

Every event the agent produces (kernel, image, execution, batch result,
agent error) is appended here with the next seq and kept until the manager
acks it, so that events survive a broken registry stream and are re-sent
after a reconnect (delivery is at least once; the manager applies them
idempotently). The outbox is bounded: past `limit` unacked events the oldest
are dropped with a log line, so that a manager that stays away for long does
not exhaust the agent's memory.
"""

from __future__ import annotations

import asyncio
import logging
from collections import deque
from datetime import UTC, datetime

from google.protobuf.timestamp_pb2 import Timestamp

from bai.api.manager.v1 import agent_registry_pb2 as reg

log = logging.getLogger(__name__)

DEFAULT_LIMIT = 10000


def timestamp(when: datetime | None = None) -> Timestamp:
    stamp = Timestamp()
    stamp.FromDatetime(when or datetime.now(UTC))
    return stamp


class Outbox:
    def __init__(self, limit: int = DEFAULT_LIMIT) -> None:
        self.limit = limit
        self._events: deque[reg.ConnectRequest] = deque()
        self._last_seq = 0
        self._acked = 0
        self._changed = asyncio.Event()
        self.dropped = 0

    @property
    def last_seq(self) -> int:
        return self._last_seq

    @property
    def acked_seq(self) -> int:
        return self._acked

    def append(self, request: reg.ConnectRequest) -> int:
        """Number `request` (an event payload) and keep it until acked; returns its seq."""
        self._last_seq += 1
        request.seq = self._last_seq
        self._events.append(request)
        while len(self._events) > self.limit:
            lost = self._events.popleft()
            self.dropped += 1
            log.warning(
                "outbox full: dropping an unacked event",
                extra={"seq": lost.seq, "kind": lost.WhichOneof("payload"), "limit": self.limit},
            )
        self._changed.set()
        return self._last_seq

    def kernel_event(self, event: reg.KernelEvent) -> int:
        if not event.HasField("time"):
            event.time.CopyFrom(timestamp())
        return self.append(reg.ConnectRequest(kernel_event=event))

    def execution_event(self, event: reg.ExecutionEvent) -> int:
        return self.append(reg.ConnectRequest(execution_event=event))

    def batch_result(self, result: reg.BatchResult) -> int:
        return self.append(reg.ConnectRequest(batch_result=result))

    def image_event(self, event: reg.ImageEvent) -> int:
        return self.append(reg.ConnectRequest(image_event=event))

    def agent_error(self, message: str, detail: str = "") -> int:
        event = reg.AgentErrorEvent(time=timestamp(), message=message, detail=detail)
        return self.append(reg.ConnectRequest(agent_error=event))

    def ack(self, seq: int) -> None:
        """The manager stored everything up to `seq`: forget it."""
        self._acked = max(self._acked, seq)
        while self._events and self._events[0].seq <= self._acked:
            self._events.popleft()

    def unacked(self, after: int = 0) -> list[reg.ConnectRequest]:
        """Kept events with seq > `after`, oldest first."""
        return [event for event in self._events if event.seq > after]

    async def wait_beyond(self, seq: int) -> None:
        """Return once an event with a seq above `seq` exists."""
        while self._last_seq <= seq:
            self._changed.clear()
            await self._changed.wait()
