"""schedule(snapshot, config) -> Plan: one scheduling round over one scaling group.

For each pending session, in the policy's order, the first failing check
gives its diagnostic: reserved time, dependencies, concurrency (SFTP for
SYSTEM sessions), keypair / user / project / domain resource limits, unknown
slots, architecture, designated agents, agent resources and container limit.
A placement updates the in-round view (agents' free slots and containers,
every owner's usage and session counts), so later sessions see it.

Single-node sessions put all kernels on one agent that fits their sum;
multi-node sessions choose an agent per kernel (several kernels may share
one) and are placed whole or not at all.

strict_fifo: a session blocked on the group's agents (agent resources,
container limit, designated agents) stops the round; the sessions behind it
get a PRIORITY diagnostic. Sessions waiting for reasons of their own (time,
dependencies, quotas, an unknown slot or an absent architecture) never block
others, or one of them could stall the group forever.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from decimal import Decimal
from types import MappingProxyType

from bai.manager.scheduling.agent_index import AgentIndex
from bai.manager.scheduling.checks import Quotas, time_and_dependencies
from bai.manager.scheduling.config import SchedulerConfig
from bai.manager.scheduling.ordering import session_order
from bai.manager.scheduling.plan import (
    AgentDelta,
    Diagnostic,
    KernelPlacement,
    Placement,
    Plan,
    SchedulingCheck,
    Shortfall,
)
from bai.manager.scheduling.selectors import IMAGE_HOLDERS, Selector
from bai.manager.scheduling.snapshot import ClusterMode, PendingSession, SchedulingSnapshot
from bai.manager.scheduling.vectors import SlotSpace, Vector

_BLOCKING = frozenset(
    {
        SchedulingCheck.AGENT_RESOURCES,
        SchedulingCheck.CONTAINER_LIMIT,
        SchedulingCheck.DESIGNATED_AGENT,
    }
)


def slot_space(snapshot: SchedulingSnapshot) -> SlotSpace:
    """Scales covering every amount in the snapshot."""

    def maps() -> Iterator[Mapping[str, Decimal]]:
        for agent in snapshot.agents:
            yield agent.capacity
            yield agent.occupied
        for session in snapshot.pending:
            for kernel in session.kernels:
                yield kernel.slots
        for policy in snapshot.keypair_policies.values():
            yield policy.total_resource_slots
        for usage in snapshot.keypair_usage.values():
            yield usage.occupied
        for table in (
            snapshot.user_limits,
            snapshot.project_limits,
            snapshot.domain_limits,
            snapshot.user_usage,
            snapshot.project_usage,
            snapshot.domain_usage,
        ):
            yield from table.values()

    return SlotSpace.covering(snapshot.known_slots, maps())


class _Round:
    def __init__(self, snapshot: SchedulingSnapshot, config: SchedulerConfig) -> None:
        self.snapshot = snapshot
        self.config = config
        self.space = space = slot_space(snapshot)
        self.index = AgentIndex(snapshot.agents, space)
        self.quotas = Quotas(snapshot, space)
        self.selector = Selector(self.index, config.selector, snapshot.round_robin_cursor)
        self.unknown = tuple(
            i for i, name in enumerate(space.names) if name not in snapshot.known_slots
        )

    def dominant_share(self, access_key: str) -> float:
        used = self.quotas.keypairs.used(access_key)
        total = self.index.total
        return max((u / t for u, t in zip(used, total, strict=True) if t > 0), default=0.0)

    def blocks_group(self, diagnostic: Diagnostic) -> bool:
        """Whether the session waits for the group's agents (not for reasons of its own)."""
        known = self.snapshot.known_slots
        return diagnostic.check in _BLOCKING and all(s.slot in known for s in diagnostic.shortfalls)

    def unknown_slots(self, request: Vector) -> Diagnostic | None:
        """No agent will ever offer these: AGENT_RESOURCES, and it never blocks the group."""
        asked = [i for i in self.unknown if request[i] > 0]
        if not asked:
            return None
        space = self.space
        return Diagnostic(
            SchedulingCheck.AGENT_RESOURCES,
            f"unknown slot {', '.join(space.names[i] for i in asked)}",
            tuple(
                Shortfall(space.names[i], space.amount(i, request[i]), Decimal(0)) for i in asked
            ),
        )

    def place(
        self, session: PendingSession, kernels: list[Vector], request: Vector
    ) -> Placement | Diagnostic:
        if not self.index.has_architecture(session.architecture):
            return Diagnostic(
                SchedulingCheck.ARCHITECTURE,
                f"no schedulable {session.architecture} agent in scaling group "
                f"{self.snapshot.scaling_group}",
            )
        if session.cluster_mode is ClusterMode.MULTI_NODE:
            chosen = self._per_kernel(session, kernels)
        else:
            found = self._choose(session, request, len(kernels), remember=True)
            if isinstance(found, Diagnostic):
                return found
            self.index.take(found, request, len(kernels))
            self.selector.placed(found)
            chosen = [found] * len(kernels)
        if isinstance(chosen, Diagnostic):
            return chosen
        ids = self.index.ids
        return Placement(
            session.id,
            tuple(
                KernelPlacement(kernel.kernel_id, ids[position], kernel.slots)
                for kernel, position in zip(session.kernels, chosen, strict=True)
            ),
        )

    def _choose(
        self, session: PendingSession, request: Vector, containers: int, remember: bool
    ) -> int | Diagnostic:
        shape = self.selector.shape(session.architecture, request)
        if session.image_agents is not None:
            holders = session.image_agents
            if session.agent_list:
                holders = tuple(a for a in session.agent_list if a in session.image_agents)
            return self.selector.designated(shape, holders, containers, IMAGE_HOLDERS)
        if session.agent_list:
            return self.selector.designated(shape, session.agent_list, containers)
        return self.selector.choose(shape, containers, remember)

    def _per_kernel(self, session: PendingSession, kernels: list[Vector]) -> list[int] | Diagnostic:
        """An agent per kernel, each seeing the kernels placed before it; all or none."""
        chosen: list[int] = []
        cursor = self.selector.cursor
        for vector in kernels:
            found = self._choose(session, vector, 1, remember=not chosen)
            if isinstance(found, Diagnostic):
                for position, taken in zip(chosen, kernels, strict=False):
                    self.index.take(position, taken, 1, sign=-1)
                self.selector.cursor = cursor
                return found
            self.index.take(found, vector, 1)
            self.selector.placed(found)
            chosen.append(found)
        return chosen

    def decide(self, session: PendingSession) -> Placement | Diagnostic:
        kernels = [self.space.vector(kernel.slots) for kernel in session.kernels]
        if len(kernels) == 1:
            request = kernels[0]
        else:
            request = tuple(map(sum, zip(*kernels, strict=True))) or tuple(self.space.zeros())
        diagnostic = (
            time_and_dependencies(session, self.snapshot)
            or self.quotas.diagnose(session, request)
            or self.unknown_slots(request)
        )
        if diagnostic is not None:
            return diagnostic
        found = self.place(session, kernels, request)
        if isinstance(found, Placement):
            self.quotas.add(session, request)
        return found

    def deltas(self) -> tuple[AgentDelta, ...]:
        index, space = self.index, self.space
        out = []
        for position in sorted(index.added):
            added = index.added[position]
            containers = index.added_containers.get(position, 0)
            if not any(added) and not containers:
                continue
            agent = index.agents[position]
            delta = space.slots(added)
            out.append(
                AgentDelta(
                    agent.id, agent.revision, delta, (agent.occupied + delta).nonzero(), containers
                )
            )
        return tuple(out)


def schedule(snapshot: SchedulingSnapshot, config: SchedulerConfig | None = None) -> Plan:
    config = config or SchedulerConfig()
    state = _Round(snapshot, config)
    placements: list[Placement] = []
    diagnostics: dict[str, Diagnostic] = {}
    deferred: list[str] = []
    blocked: Diagnostic | None = None
    for session in session_order(config.ordering, snapshot.pending, state.dominant_share):
        if blocked is not None:
            diagnostics[session.id] = blocked
        elif len(placements) >= config.max_sessions_per_round:
            deferred.append(session.id)
        else:
            found = state.decide(session)
            if isinstance(found, Placement):
                placements.append(found)
                continue
            diagnostics[session.id] = found
            if config.strict_fifo and state.blocks_group(found):
                blocked = Diagnostic(
                    SchedulingCheck.PRIORITY, f"waiting behind session {session.id} (strict FIFO)"
                )
    return Plan(
        placements=tuple(placements),
        agent_deltas=state.deltas(),
        diagnostics=MappingProxyType(diagnostics),
        deferred=tuple(deferred),
        round_robin_cursor=state.selector.cursor,
    )
