"""The agent's pool of host ports for kernels' services and AssignPort.

Ports are taken per owner (a kernel id, or "request:<id>" for AssignPort) so
that a restarted agent can restore exactly what each kernel held, and
AssignPort retries with the same request id get the same port back.
"""

from __future__ import annotations

import socket

from bai.common.errors import InvalidArgument, ResourceExhausted


def no_capacity_ports(requested: int, available: int) -> ResourceExhausted:
    return ResourceExhausted(
        f"host port pool exhausted: {requested} requested, {available} free",
        reason="NO_CAPACITY",
        metadata={"resource": "port", "requested": str(requested), "available": str(available)},
    )


def _bindable(port: int) -> bool:
    """Another process (or another agent on this host) may already use it."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as probe:
        probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            probe.bind(("0.0.0.0", port))
        except OSError:
            return False
    return True


class PortPool:
    def __init__(self, start: int, end: int) -> None:
        self.start = start
        self.end = end
        self._owner_of: dict[int, str] = {}
        self._next = start

    def contains(self, port: int) -> bool:
        return self.start <= port < self.end

    @property
    def free_count(self) -> int:
        return (self.end - self.start) - len(self._owner_of)

    def take(self, owner: str, count: int) -> list[int]:
        """`count` free ports for `owner` (all or none); raises NO_CAPACITY."""
        if count <= 0:
            return []
        taken: list[int] = []
        size = self.end - self.start
        for _ in range(size):
            port = self._next
            self._next = self.start + (self._next - self.start + 1) % size
            if port in self._owner_of or not _bindable(port):
                continue
            self._owner_of[port] = owner
            taken.append(port)
            if len(taken) == count:
                return taken
        for port in taken:
            del self._owner_of[port]
        raise no_capacity_ports(count, len(taken))

    def restore(self, owner: str, ports: list[int]) -> None:
        """Mark persisted ports as held again (agent restart); idempotent."""
        for port in ports:
            if self.contains(port):
                self._owner_of[port] = owner

    def release_owner(self, owner: str) -> None:
        for port in [p for p, o in self._owner_of.items() if o == owner]:
            del self._owner_of[port]

    def release(self, port: int) -> None:
        if not self.contains(port):
            raise InvalidArgument.field("port", f"{port} is outside [{self.start}, {self.end})")
        self._owner_of.pop(port, None)

    def release_all(self) -> None:
        self._owner_of.clear()

    def owned(self, owner: str) -> list[int]:
        return sorted(p for p, o in self._owner_of.items() if o == owner)

    def assign(self, request_id: str) -> int:
        """AssignPort: a retry with the same request id gets the same port."""
        if request_id:
            held = self.owned(f"request:{request_id}")
            if held:
                return held[0]
        owner = f"request:{request_id}" if request_id else "request:"
        return self.take(owner, 1)[0]
