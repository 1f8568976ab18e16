"""Pure choice of a worker and a frontend slot (a port, or a subdomain) for a new circuit."""

from __future__ import annotations

import re
import uuid
from collections.abc import Iterable
from dataclasses import dataclass

from bai.common.errors import ResourceExhausted
from bai.coordinator.records import Circuit, Worker


@dataclass(frozen=True)
class Slot:
    worker: Worker
    port: int | None
    subdomain: str


def capacity(worker: Worker) -> int:
    if worker.frontend_mode == "port":
        return max(0, worker.port_end - worker.port_start + 1)
    return worker.available_slots


def subdomain_for(app: str, circuit_id: uuid.UUID) -> str:
    """A DNS label: the app name made safe, then enough of the id to be unique."""
    label = re.sub(r"[^a-z0-9-]+", "-", app.lower()).strip("-")[:24] or "app"
    return f"{label}-{circuit_id.hex[:12]}"


def choose_slot(
    workers: Iterable[Worker],
    circuits: Iterable[Circuit],
    frontend_mode: str | None,
    tcp: bool,
    app: str,
    circuit_id: uuid.UUID,
) -> Slot:
    """The ALIVE worker of the wanted mode with the most free slots (ties: by authority).

    Raw TCP needs its own port, so it only goes to PORT workers.
    """
    taken: dict[str, set[int]] = {}
    counts: dict[str, int] = {}
    for c in circuits:
        counts[c.worker] = counts.get(c.worker, 0) + 1
        if c.port is not None:
            taken.setdefault(c.worker, set()).add(c.port)
    best: tuple[int, Worker] | None = None
    for w in sorted(workers, key=lambda w: w.authority):
        if w.status != "alive" or (frontend_mode and w.frontend_mode != frontend_mode):
            continue
        if tcp and w.frontend_mode != "port":
            continue
        free = capacity(w) - counts.get(w.authority, 0)
        if free > 0 and (best is None or free > best[0]):
            best = (free, w)
    if best is None:
        wanted = f"{frontend_mode} " if frontend_mode else ""
        raise ResourceExhausted(f"no ALIVE {wanted}worker has a free slot", reason="NO_CAPACITY")
    worker = best[1]
    if worker.frontend_mode == "wildcard":
        return Slot(worker, None, subdomain_for(app, circuit_id))
    used = taken.get(worker.authority, set())
    port = next(p for p in range(worker.port_start, worker.port_end + 1) if p not in used)
    return Slot(worker, port, "")
