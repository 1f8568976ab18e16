"""Agent selection: which agent takes a request (or why none can).

concentrated: the fitting agent with the least free amount of the request's
dominant slot (the slot it asks most of, relative to the group's capacity);
dispersed: the one with the most; round-robin: the next fitting agent after
the cursor in agent id order. Designated agents (agent_list) restrict the
choice to those agents, strictly.

Within a round agents only lose free capacity, so a request shape that found
no agent stays unplaceable for the rest of the round: the answer is cached.
"""

from __future__ import annotations

from bisect import bisect_left, bisect_right
from dataclasses import dataclass

from bai.manager.scheduling.agent_index import AgentIndex, Pool
from bai.manager.scheduling.config import AgentSelector
from bai.manager.scheduling.plan import Diagnostic, SchedulingCheck, Shortfall
from bai.manager.scheduling.vectors import Vector


@dataclass(frozen=True, slots=True)
class Shape:
    """A request with what the search needs precomputed."""

    architecture: str
    request: Vector
    # (slot index, amount) for every slot asked for.
    items: tuple[tuple[int, int], ...]
    dominant: int
    pools: tuple[Pool, ...]


@dataclass(frozen=True, slots=True)
class Restriction:
    """Why only some agents may take a session, as diagnostics name it."""

    check: SchedulingCheck
    singular: str
    plural: str


DESIGNATED = Restriction(SchedulingCheck.DESIGNATED_AGENT, "designated agent", "designated agents")
IMAGE_HOLDERS = Restriction(
    SchedulingCheck.IMAGE_LOCATION, "agent holding its image", "agents holding its image"
)


class Selector:
    def __init__(self, index: AgentIndex, strategy: AgentSelector, cursor: str | None) -> None:
        self.index = index
        self.strategy = strategy
        self.cursor = cursor
        self._shapes: dict[tuple[str, Vector], Shape] = {}
        self._no_fit: dict[tuple[str, Vector, int], Diagnostic] = {}

    def shape(self, architecture: str, request: Vector) -> Shape:
        key = (architecture, request)
        found = self._shapes.get(key)
        if found is None:
            items = tuple((i, amount) for i, amount in enumerate(request) if amount > 0)
            total = self.index.total
            dominant = max(
                (i for i, _ in items),
                key=lambda i: request[i] / total[i] if total[i] else float("inf"),
                default=0,
            )
            needed = frozenset(i for i, _ in items)
            pools = tuple(self.index.candidate_pools(architecture, needed))
            found = self._shapes[key] = Shape(architecture, request, items, dominant, pools)
        return found

    def choose(self, shape: Shape, containers: int, remember: bool) -> int | Diagnostic:
        """An agent position for the request, or why none fits.

        `remember`: a failure may be cached (no tentative placement is in
        progress that would be undone later).
        """
        key = (shape.architecture, shape.request, containers)
        known = self._no_fit.get(key)
        if known is not None:
            return known
        if self.strategy is AgentSelector.ROUND_ROBIN:
            found = self._round_robin(shape, containers)
        else:
            found = self._by_dominant_slot(shape, containers)
        if isinstance(found, int):
            return found
        if remember:
            self._no_fit[key] = found
        return found

    def placed(self, position: int) -> None:
        if self.strategy is AgentSelector.ROUND_ROBIN:
            self.cursor = self.index.ids[position]

    def _open_pools(self, shape: Shape) -> list[Pool]:
        """Pools whose largest free amounts could hold the request, slot by slot."""
        out = []
        for pool in shape.pools:
            for i, amount in shape.items:
                if pool.by_slot[i][-1][0] < amount:
                    break
            else:
                out.append(pool)
        return out

    def _by_dominant_slot(self, shape: Shape, containers: int) -> int | Diagnostic:
        index = self.index
        free, items, dominant = index.free, shape.items, shape.dominant
        want = shape.request[dominant]
        ascending = self.strategy is AgentSelector.CONCENTRATED
        full: int | None = None
        for pool in self._open_pools(shape):
            ordered = pool.by_slot[dominant]
            start = bisect_left(ordered, (want,)) if want > 0 else 0
            span = (
                range(start, len(ordered)) if ascending else range(len(ordered) - 1, start - 1, -1)
            )
            for j in span:
                position = ordered[j][1]
                agent_free = free[position]
                for i, amount in items:
                    if agent_free[i] < amount:
                        break
                else:
                    if index.has_room(position, containers):
                        return position
                    if full is None:
                        full = position
        return self.no_fit(shape, full)

    def _round_robin(self, shape: Shape, containers: int) -> int | Diagnostic:
        index = self.index
        open_pools = {id(pool) for pool in self._open_pools(shape)}
        full: int | None = None
        if open_pools:
            ids, pool_of = index.ids, index.pool_of
            count = len(ids)
            start = bisect_right(ids, self.cursor) if self.cursor is not None else 0
            for step in range(count):
                position = (start + step) % count
                if id(pool_of[position]) not in open_pools:
                    continue
                if index.fits(position, shape.items, 0):
                    if index.has_room(position, containers):
                        return position
                    if full is None:
                        full = position
        return self.no_fit(shape, full)

    def designated(
        self,
        shape: Shape,
        agent_ids: tuple[str, ...],
        containers: int,
        who: Restriction = DESIGNATED,
    ) -> int | Diagnostic:
        """The best of `agent_ids` for the request, or why none of them can take it."""
        index = self.index
        listed = [index.position[a] for a in agent_ids if a in index.position]
        if not listed:
            named = ", ".join(agent_ids) or "none"
            return Diagnostic(who.check, f"none of the {who.plural} ({named}) is schedulable here")
        listed = [p for p in listed if index.architectures[p] == shape.architecture]
        if not listed:
            return Diagnostic(who.check, f"no {who.singular} has architecture {shape.architecture}")
        fitting = [p for p in listed if index.fits(p, shape.items, 0)]
        roomy = [p for p in fitting if index.has_room(p, containers)]
        if roomy:
            dominant, free = shape.dominant, index.free
            if self.strategy is AgentSelector.CONCENTRATED:
                return min(roomy, key=lambda p: (free[p][dominant], p))
            if self.strategy is AgentSelector.DISPERSED:
                return max(roomy, key=lambda p: (free[p][dominant], -p))
            return roomy[0]
        if fitting:
            return self._container_limit(fitting[0])
        best = max(listed, key=lambda p: (index.free[p][shape.dominant], -p))
        return Diagnostic(
            who.check,
            f"{who.singular} {index.ids[best]} (the one with the most free) cannot hold it",
            self._shortfalls(shape, index.free[best]),
            index.ids[best],
        )

    def no_fit(self, shape: Shape, full: int | None) -> Diagnostic:
        """Why no agent took the request: a container limit, or the closest agent's shortfalls."""
        if full is not None:
            return self._container_limit(full)
        index = self.index
        pools = list(shape.pools) or index.arch_pools(shape.architecture)
        best = [0] * len(index.space)
        for i, _ in shape.items:
            best[i] = max((pool.by_slot[i][-1][0] for pool in pools), default=0)
        short = self._shortfalls(shape, best)
        if short:
            slots = ", ".join(s.slot for s in short)
            return Diagnostic(
                SchedulingCheck.AGENT_RESOURCES, f"no agent has enough free {slots}", short
            )
        # Each slot fits somewhere, but no single agent has them all: show the
        # agent with the most of the dominant slot.
        closest = max(
            (pool.by_slot[shape.dominant][-1] for pool in pools),
            default=None,
        )
        agent = closest[1] if closest is not None else None
        return Diagnostic(
            SchedulingCheck.AGENT_RESOURCES,
            "no agent has enough free slots at once",
            self._shortfalls(shape, index.free[agent]) if agent is not None else (),
            index.ids[agent] if agent is not None else None,
        )

    def _container_limit(self, position: int) -> Diagnostic:
        index = self.index
        return Diagnostic(
            SchedulingCheck.CONTAINER_LIMIT,
            f"agent {index.ids[position]} has reached its container limit "
            f"({index.max_containers[position]})",
            agent_id=index.ids[position],
        )

    def _shortfalls(self, shape: Shape, available: list[int]) -> tuple[Shortfall, ...]:
        space = self.index.space
        return tuple(
            Shortfall(space.names[i], space.amount(i, amount), space.amount(i, available[i]))
            for i, amount in shape.items
            if amount > available[i]
        )
