"""The in-round view of the group's agents, indexed for fast placement.

Agents are grouped into pools by (architecture, slots they have capacity in);
each pool keeps, per slot, its agents sorted by free amount. A session then
bisects the pool on its dominant slot instead of scanning every agent, and a
glance at the largest free amount per slot rejects a pool at once. Pools
with fewer slots the session does not ask for come first, so that CPU-only
sessions do not fill GPU agents while CPU agents have room.
"""

from __future__ import annotations

from bisect import bisect_left, insort
from collections.abc import Sequence

from bai.manager.scheduling.snapshot import AgentInfo
from bai.manager.scheduling.vectors import SlotSpace, Vector

FreeList = list[tuple[int, int]]


class Pool:
    __slots__ = ("architecture", "by_slot", "members", "slots")

    def __init__(self, architecture: str, slots: frozenset[int], width: int) -> None:
        self.architecture = architecture
        self.slots = slots
        self.members: list[int] = []
        # Per slot index: (free amount, agent position), ascending.
        self.by_slot: list[FreeList] = [[] for _ in range(width)]


class AgentIndex:
    def __init__(self, agents: Sequence[AgentInfo], space: SlotSpace) -> None:
        ordered = sorted(agents, key=lambda agent: agent.id)
        width = len(space)
        self.space = space
        self.agents = ordered
        self.ids = [agent.id for agent in ordered]
        self.position = {agent_id: i for i, agent_id in enumerate(self.ids)}
        self.architectures = [agent.architecture for agent in ordered]
        self.containers = [agent.container_count for agent in ordered]
        self.max_containers = [agent.max_containers for agent in ordered]
        self.free: list[list[int]] = []
        self.total = [0] * width
        pools: dict[tuple[str, frozenset[int]], Pool] = {}
        self.pool_of: list[Pool] = []
        for position, agent in enumerate(ordered):
            capacity = space.vector(agent.capacity)
            occupied = space.vector(agent.occupied)
            self.free.append([c - o for c, o in zip(capacity, occupied, strict=True)])
            for i, amount in enumerate(capacity):
                self.total[i] += amount
            offered = frozenset(i for i, amount in enumerate(capacity) if amount > 0)
            key = (agent.architecture, offered)
            pool = pools.get(key)
            if pool is None:
                pool = pools[key] = Pool(agent.architecture, offered, width)
            pool.members.append(position)
            self.pool_of.append(pool)
        for pool in pools.values():
            for i in range(width):
                pool.by_slot[i] = sorted((self.free[a][i], a) for a in pool.members)
        self.pools = sorted(pools.values(), key=lambda p: (p.architecture, sorted(p.slots)))
        self._candidates: dict[tuple[str, frozenset[int]], list[Pool]] = {}
        # What the plan adds, per agent position.
        self.added: dict[int, list[int]] = {}
        self.added_containers: dict[int, int] = {}

    def has_architecture(self, architecture: str) -> bool:
        return any(pool.architecture == architecture for pool in self.pools)

    def arch_pools(self, architecture: str) -> list[Pool]:
        return [pool for pool in self.pools if pool.architecture == architecture]

    def candidate_pools(self, architecture: str, needed: frozenset[int]) -> list[Pool]:
        """Pools that offer every needed slot, fewest unrequested slots first."""
        key = (architecture, needed)
        found = self._candidates.get(key)
        if found is None:
            found = [
                pool
                for pool in self.pools
                if pool.architecture == architecture and needed <= pool.slots
            ]
            found.sort(key=lambda pool: len(pool.slots - needed))
            self._candidates[key] = found
        return found

    def fits(self, position: int, items: Sequence[tuple[int, int]], containers: int) -> bool:
        free = self.free[position]
        for i, amount in items:
            if free[i] < amount:
                return False
        return self.has_room(position, containers)

    def has_room(self, position: int, containers: int) -> bool:
        limit = self.max_containers[position]
        return not limit or self.containers[position] + containers <= limit

    def take(self, position: int, request: Vector, containers: int, sign: int = 1) -> None:
        """Occupy (sign 1) or give back (sign -1) a request on one agent."""
        free = self.free[position]
        by_slot = self.pool_of[position].by_slot
        added = self.added.get(position)
        if added is None:
            added = self.added[position] = [0] * len(free)
        for i, amount in enumerate(request):
            if amount:
                ordered = by_slot[i]
                old = free[i]
                del ordered[bisect_left(ordered, (old, position))]
                new = free[i] = old - sign * amount
                insort(ordered, (new, position))
                added[i] += sign * amount
        self.containers[position] += sign * containers
        self.added_containers[position] = self.added_containers.get(position, 0) + sign * containers
