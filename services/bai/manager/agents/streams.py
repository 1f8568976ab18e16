"""The registry streams this manager replica holds, so that other code can talk
to a connected agent (config updates, resync) and so that one agent id is
not connected twice from different addresses.
"""

from __future__ import annotations

import asyncio
import uuid
from dataclasses import dataclass, field
from typing import Any

from bai.common.errors import AlreadyExists


@dataclass(eq=False)
class OpenStream:
    agent_id: str
    addr: str
    # Messages for the agent; None ends the stream (replaced by a newer one).
    outbox: asyncio.Queue[Any | None] = field(default_factory=asyncio.Queue)


class AgentStreams:
    def __init__(self) -> None:
        # Written to agents.manager_id: which replica holds an agent's stream.
        self.manager_id = uuid.uuid4().hex
        self._open: dict[str, OpenStream] = {}

    def attach(self, agent_id: str, addr: str) -> OpenStream:
        """Register a new stream; a stale one from the same address is ended.

        AGENT_REJECTED (ALREADY_EXISTS) when the id is connected from another address.
        """
        current = self._open.get(agent_id)
        if current is not None and current.addr != addr:
            raise AlreadyExists(
                f"agent {agent_id} is already connected from {current.addr}",
                reason="AGENT_REJECTED",
                metadata={"agent_id": agent_id},
            )
        if current is not None:
            current.outbox.put_nowait(None)
        stream = self._open[agent_id] = OpenStream(agent_id, addr)
        return stream

    def detach(self, stream: OpenStream) -> None:
        if self._open.get(stream.agent_id) is stream:
            del self._open[stream.agent_id]

    def push(self, agent_id: str, message: Any) -> bool:
        """Queue a message for a connected agent; False when not connected here."""
        stream = self._open.get(agent_id)
        if stream is None:
            return False
        stream.outbox.put_nowait(message)
        return True

    def connected(self) -> list[str]:
        return sorted(self._open)
