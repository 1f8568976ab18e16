"""When circuits expire: a creation-time deadline, and which circuits are past it."""

from __future__ import annotations

import uuid
from collections.abc import Iterable
from datetime import datetime, timedelta

from bai.coordinator.records import Circuit

MAX_CIRCUIT_TTL_SECONDS = 30 * 86400


def expiry_of(created_at: datetime, ttl_seconds: float | None) -> datetime | None:
    """The moment a circuit created at `created_at` expires; None (never) for no or zero ttl."""
    if not ttl_seconds:
        return None
    return created_at + timedelta(seconds=ttl_seconds)


def is_expired(circuit: Circuit, now: datetime) -> bool:
    return circuit.expires_at is not None and circuit.expires_at <= now


def expired_circuits(circuits: Iterable[Circuit], now: datetime) -> list[uuid.UUID]:
    """Ids of the circuits expired at `now`, in a stable order (for logs and tests)."""
    return sorted((c.id for c in circuits if is_expired(c, now)), key=str)
