"""The coordinator's live state: workers and circuits in memory, the database behind them,
and each change written to the affected worker's xDS files and ADS snapshot before the
call returns. A circuit change also waits (bounded, outside the lock) until the worker's
Envoys on ADS have ACKed it, so that a caller's next connection finds it applied."""

from __future__ import annotations

import asyncio
import dataclasses
import logging
import uuid
from collections.abc import Iterable
from datetime import UTC, datetime, timedelta
from pathlib import Path

from bai.common.errors import Aborted, FailedPrecondition, InvalidArgument, NotFound
from bai.coordinator.expiry import expired_circuits, expiry_of, is_expired
from bai.coordinator.placement import choose_slot
from bai.coordinator.records import TCP_PROTOCOLS, Circuit, Route, Worker
from bai.coordinator.repository import Repository, SlotTaken
from bai.coordinator.spec import (
    MAX_TOKEN_TTL_SECONDS,
    CircuitSpec,
    route_violations,
    validate_circuit_spec,
    validate_worker,
)
from bai.coordinator.tokens import issue_app_token
from bai.coordinator.xds.ads import Applied, Snapshots
from bai.coordinator.xds.files import worker_directory, write_worker_files
from bai.coordinator.xds.resources import RenderSettings, worker_resources

log = logging.getLogger(__name__)

# Misses of this many heartbeat intervals make a worker LOST.
LOST_AFTER_INTERVALS = 3
SLOT_RETRIES = 5


class CoordinatorState:
    def __init__(
        self,
        repo: Repository,
        render: RenderSettings,
        xds_root: Path,
        app_token_secret: str,
        heartbeat_interval: float,
        snapshots: Snapshots | None = None,
        apply_timeout: float = 5.0,
    ) -> None:
        self.repo = repo
        # Served over ADS; the same resources also go to files, for Envoys bootstrapped
        # with filesystem xDS.
        self.snapshots = snapshots or Snapshots()
        self.render = render
        self.xds_root = xds_root
        self.secret = app_token_secret
        self.heartbeat_interval = heartbeat_interval
        # How long a circuit change waits for the worker's Envoys to ACK it; 0 = no wait.
        self.apply_timeout = apply_timeout
        self.workers: dict[str, Worker] = {}
        self.circuits: dict[uuid.UUID, Circuit] = {}
        self._hosts: dict[str, uuid.UUID] = {}
        # One change at a time: slot choice, the row and the files stay consistent.
        self._lock = asyncio.Lock()

    # --- start-up ---

    async def load(self) -> None:
        """Rebuild everything from the database, drop the circuits that expired while no
        coordinator ran, and rewrite every worker's files."""
        found, circuits = await self.repo.load()
        self.workers = {w.authority: w for w in found}
        self.circuits = {c.id: c for c in circuits}
        expired = expired_circuits(circuits, datetime.now(UTC))
        if expired:
            await self.repo.delete_circuits(expired)
            for circuit_id in expired:
                self.circuits.pop(circuit_id)
            log.info("expired circuits removed", extra={"circuits": [str(i) for i in expired]})
        self._reindex()
        for authority in self.workers:
            await self._push(authority)
        log.info(
            "state loaded", extra={"workers": len(self.workers), "circuits": len(self.circuits)}
        )

    def _reindex(self) -> None:
        self._hosts = {}
        for c in self.circuits.values():
            worker = self.workers.get(c.worker)
            if c.subdomain and worker is not None:
                self._hosts[f"{c.subdomain}.{worker.wildcard_domain}".lower()] = c.id

    async def _push(self, authority: str) -> int:
        """Render, write and publish a worker's resources; returns the ADS generation."""
        worker = self.workers[authority]
        listeners, clusters = worker_resources(worker, self.circuits.values(), self.render)
        directory = worker_directory(self.xds_root, authority)
        await asyncio.to_thread(write_worker_files, directory, listeners, clusters)
        return self.snapshots.set(authority, listeners, clusters)

    async def _applied(self, generations: dict[str, int], change: str) -> None:
        """Wait until each worker's Envoys run its generation. Never fails: the change is
        made; a worker whose Envoy is not on ADS is not waited for, and one that is slow or
        rejects it is logged."""
        if self.apply_timeout <= 0:
            return
        for authority, generation in generations.items():
            outcome = await self.snapshots.applied(authority, generation, self.apply_timeout)
            if outcome in (Applied.TIMED_OUT, Applied.REJECTED):
                log.warning(
                    "worker has not applied a circuit change",
                    extra={"worker": authority, "change": change, "outcome": outcome.value},
                )

    # --- lookups (ext_authz) ---

    def _live(self, circuit: Circuit | None) -> Circuit | None:
        """None for an expired circuit the reaper has not removed yet."""
        if circuit is None or is_expired(circuit, datetime.now(UTC)):
            return None
        return circuit

    def circuit_by_id(self, circuit_id: str) -> Circuit | None:
        try:
            return self._live(self.circuits.get(uuid.UUID(circuit_id)))
        except ValueError:
            return None

    def circuit_by_host(self, host: str) -> Circuit | None:
        name = host.rsplit(":", 1)[0] if not host.endswith("]") else host
        found = self._hosts.get(name.lower())
        return None if found is None else self._live(self.circuits.get(found))

    def worker(self, authority: str) -> Worker | None:
        return self.workers.get(authority)

    # --- circuits ---

    def get_circuit(self, circuit_id: uuid.UUID) -> Circuit:
        circuit = self._live(self.circuits.get(circuit_id))
        if circuit is None:
            raise NotFound(f"circuit {circuit_id} not found")
        return circuit

    async def create_circuit(self, spec: CircuitSpec) -> Circuit:
        circuit, generation = await self._create_circuit(spec)
        await self._applied({circuit.worker: generation}, "create")
        return circuit

    async def _create_circuit(self, spec: CircuitSpec) -> tuple[Circuit, int]:
        validate_circuit_spec(spec)
        digest = spec.digest()
        async with self._lock:
            for existing in list(self.circuits.values()):
                if existing.request_id == spec.request_id:
                    if is_expired(existing, datetime.now(UTC)):
                        # A retry after expiry gets a new circuit; the old one goes first.
                        await self._remove([existing.id])
                        break
                    if existing.request_digest != digest:
                        raise FailedPrecondition(
                            f"request_id {spec.request_id} was used for a different circuit",
                            reason="REQUEST_ID_CONFLICT",
                        )
                    return existing, self.snapshots.get(existing.worker).generation
            for _ in range(SLOT_RETRIES):
                circuit_id = uuid.uuid4()
                now = datetime.now(UTC)
                slot = choose_slot(
                    self.workers.values(),
                    self.circuits.values(),
                    spec.frontend_mode,
                    spec.protocol in TCP_PROTOCOLS,
                    spec.app,
                    circuit_id,
                )
                draft = Circuit(
                    id=circuit_id,
                    request_id=spec.request_id,
                    request_digest=digest,
                    app=spec.app,
                    protocol=spec.protocol,
                    app_mode=spec.app_mode,
                    frontend_mode=slot.worker.frontend_mode,
                    worker=slot.worker.authority,
                    port=slot.port,
                    subdomain=slot.subdomain,
                    envs=dict(spec.envs),
                    arguments=dict(spec.arguments),
                    open_to_public=spec.open_to_public,
                    allowed_client_ips=spec.allowed_client_ips,
                    user_id=spec.user_id,
                    endpoint_id=spec.endpoint_id,
                    runtime_variant=spec.runtime_variant,
                    session_ids=spec.session_ids,
                    routes=spec.routes,
                    created_at=now,
                    expires_at=expiry_of(now, spec.ttl_seconds),
                )
                try:
                    circuit = await self.repo.insert_circuit(draft)
                except SlotTaken:
                    # Another coordinator replica took the slot; reload and choose again.
                    await self._reload_circuits()
                    continue
                self.circuits[circuit.id] = circuit
                self._reindex()
                generation = await self._push(circuit.worker)
                log.info(
                    "circuit created", extra={"circuit": str(circuit.id), "port": circuit.port}
                )
                return circuit, generation
            raise Aborted("could not reserve a frontend slot; retry")

    async def _reload_circuits(self) -> None:
        _, circuits = await self.repo.load()
        self.circuits = {c.id: c for c in circuits}
        self._reindex()

    async def update_routes(
        self, circuit_id: uuid.UUID, routes: tuple[Route, ...], session_ids: tuple[str, ...]
    ) -> Circuit:
        violations = route_violations(routes)
        if violations:
            raise InvalidArgument(violations)
        async with self._lock:
            self.get_circuit(circuit_id)
            updated = await self.repo.update_routes(circuit_id, routes, session_ids)
            if updated is None:
                self.circuits.pop(circuit_id, None)
                raise NotFound(f"circuit {circuit_id} not found")
            self.circuits[circuit_id] = updated
            generation = await self._push(updated.worker)
        await self._applied({updated.worker: generation}, "update routes")
        return updated

    async def delete_circuit(self, circuit_id: uuid.UUID) -> None:
        async with self._lock:
            generations = await self._remove([circuit_id])
        await self._applied(generations, "delete")

    async def reap_expired(self, now: datetime | None = None) -> list[uuid.UUID]:
        """Remove the circuits expired at `now` as DeleteCircuit would (slot freed, files
        rewritten)."""
        async with self._lock:
            expired = expired_circuits(self.circuits.values(), now or datetime.now(UTC))
            if expired:
                await self._remove(expired)
                log.info("expired circuits removed", extra={"circuits": [str(i) for i in expired]})
            return expired

    async def _remove(self, circuit_ids: list[uuid.UUID]) -> dict[str, int]:
        """Delete rows, forget the circuits and rewrite their workers' files (under the lock);
        returns each touched worker's new generation."""
        await self.repo.delete_circuits(circuit_ids)
        removed = [c for c in (self.circuits.pop(i, None) for i in circuit_ids) if c is not None]
        self._reindex()
        return {a: await self._push(a) for a in sorted({c.worker for c in removed})}

    def list_circuits(
        self, session_id: str = "", endpoint_id: str = "", user_id: str = "", worker: str = ""
    ) -> list[Circuit]:
        """Ordered by creation time (then id, for equal stamps)."""
        now = datetime.now(UTC)
        chosen = [
            c
            for c in self.circuits.values()
            if not is_expired(c, now)
            and (not session_id or session_id in c.session_ids)
            and (not endpoint_id or c.endpoint_id == endpoint_id)
            and (not user_id or c.user_id == user_id)
            and (not worker or c.worker == worker)
        ]
        epoch = datetime.min.replace(tzinfo=UTC)
        return sorted(chosen, key=lambda c: (c.created_at or epoch, str(c.id)))

    def issue_token(
        self, circuit_id: uuid.UUID, user_id: str, ttl_seconds: float | None
    ) -> tuple[str, float]:
        circuit = self.get_circuit(circuit_id)
        if ttl_seconds is None:
            ttl_seconds = 30 * 86400 if circuit.app_mode == "inference" else 3600
        if not 0 < ttl_seconds <= MAX_TOKEN_TTL_SECONDS:
            raise InvalidArgument.field("ttl", "must be positive and at most 30 days")
        subject = user_id or circuit.user_id
        if not subject:
            raise InvalidArgument.field("user_id", "is required (the circuit has no owner)")
        return issue_app_token(self.secret, str(circuit.id), subject, ttl_seconds)

    # --- workers ---

    async def register_worker(self, worker: Worker) -> Worker:
        validate_worker(worker)
        async with self._lock:
            saved = await self.repo.save_worker(
                dataclasses.replace(worker, status="alive", last_heartbeat_at=datetime.now(UTC))
            )
            self.workers[saved.authority] = saved
            self._reindex()
            await self._push(saved.authority)
            return saved

    async def heartbeat(self, authority: str) -> Worker:
        """LOST becomes ALIVE again; a TERMINATED worker must register anew (it is told so)."""
        current = self.workers.get(authority)
        if current is None:
            raise NotFound(f"worker {authority} is not registered")
        if current.status == "terminated":
            return current
        async with self._lock:
            saved = await self.repo.set_worker_status(authority, "alive", datetime.now(UTC))
            if saved is None:
                raise NotFound(f"worker {authority} is not registered")
            self.workers[authority] = saved
            return saved

    async def deregister_worker(self, authority: str) -> None:
        async with self._lock:
            saved = await self.repo.set_worker_status(authority, "terminated")
            if saved is not None:
                self.workers[authority] = saved

    def list_workers(self, statuses: Iterable[str] = ()) -> list[Worker]:
        wanted = set(statuses)
        return sorted(
            (w for w in self.workers.values() if not wanted or w.status in wanted),
            key=lambda w: w.authority,
        )

    async def sweep_lost(self, now: datetime | None = None) -> list[str]:
        """ALIVE workers silent for 3 intervals become LOST (their circuits stay served)."""
        now = now or datetime.now(UTC)
        limit = timedelta(seconds=self.heartbeat_interval * LOST_AFTER_INTERVALS)
        lost = []
        async with self._lock:
            for w in list(self.workers.values()):
                if (
                    w.status == "alive"
                    and w.last_heartbeat_at
                    and now - w.last_heartbeat_at > limit
                ):
                    saved = await self.repo.set_worker_status(w.authority, "lost")
                    if saved is not None:
                        self.workers[w.authority] = saved
                        lost.append(w.authority)
        for authority in lost:
            log.warning("worker lost", extra={"worker": authority})
        return lost
