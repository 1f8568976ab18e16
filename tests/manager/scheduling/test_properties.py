"""For any snapshot: no agent over capacity, no limit exceeded, every session accounted for."""

from __future__ import annotations

from collections import Counter
from collections.abc import Mapping
from decimal import Decimal

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from bai.common.slots import Slots, total
from bai.manager.scheduling import (
    AgentInfo,
    AgentSelector,
    ClusterMode,
    KernelRequest,
    KeypairPolicy,
    KeypairUsage,
    OrderingPolicy,
    PendingSession,
    Plan,
    SchedulerConfig,
    SchedulingSnapshot,
    SessionType,
    schedule,
)
from tests.manager.scheduling.builders import KNOWN, T0

SLOTS = ("cpu", "mem", "cuda.device")
KEYS, USERS, PROJECTS, DOMAINS = ("K1", "K2"), ("u1", "u2"), ("p1", "p2"), ("d1",)
# Tenths and hundredths, so that scales differ between slots and values.
small = st.integers(0, 30).map(lambda n: Decimal(n) / 10) | st.integers(0, 300).map(
    lambda n: Decimal(n) / 100
)
large = st.integers(0, 160).map(lambda n: Decimal(n) / 10)
x86_mostly = st.sampled_from(["x86_64"] * 5 + ["aarch64"])


def slot_maps(amounts: st.SearchStrategy[Decimal], max_slots: int = 3) -> st.SearchStrategy[Slots]:
    return st.dictionaries(st.sampled_from(SLOTS), amounts, max_size=max_slots).map(Slots)


@st.composite
def agents(draw: st.DrawFn, n: int) -> AgentInfo:
    capacity = draw(slot_maps(large))
    used = draw(st.sampled_from([Decimal(0), Decimal(0), Decimal("0.5"), Decimal(1)]))
    max_containers = draw(st.sampled_from([0, 0, 0, 1, 2, 4]))
    return AgentInfo(
        id=f"a{n}",
        architecture=draw(x86_mostly),
        capacity=capacity,
        occupied=Slots({k: v * used for k, v in capacity.items()}),
        revision=n,
        container_count=draw(st.integers(0, max_containers or 3)),
        max_containers=max_containers,
    )


@st.composite
def sessions(draw: st.DrawFn, n: int) -> PendingSession:
    kernels = draw(st.integers(1, 3))
    request = draw(slot_maps(small))
    return PendingSession(
        id=f"s{n}",
        access_key=draw(st.sampled_from(KEYS)),
        user_id=draw(st.sampled_from(USERS)),
        project_id=draw(st.sampled_from(PROJECTS)),
        domain_name=draw(st.sampled_from(DOMAINS)),
        created_at=T0,
        kernels=tuple(KernelRequest(f"s{n}k{i}", "main", request) for i in range(kernels)),
        session_type=draw(st.sampled_from([SessionType.INTERACTIVE] * 3 + [SessionType.SYSTEM])),
        priority=draw(st.sampled_from([0, 0, 5])),
        architecture=draw(x86_mostly),
        cluster_mode=draw(st.sampled_from(list(ClusterMode))),
        agent_list=draw(st.sampled_from([(), (), (), (), ("a0",), ("a1", "a2")])),
        dependencies_satisfied=draw(st.sampled_from([None] * 6 + [True, False])),
    )


def limits(owners: tuple[str, ...]) -> st.SearchStrategy[dict[str, Slots]]:
    return st.dictionaries(st.sampled_from(owners), slot_maps(large, 2))


@st.composite
def snapshots(draw: st.DrawFn) -> SchedulingSnapshot:
    n_agents = draw(st.integers(1, 8))
    n_sessions = draw(st.integers(0, 12))
    return SchedulingSnapshot(
        now=T0,
        scaling_group="g",
        pending=tuple(draw(sessions(n)) for n in range(n_sessions)),
        agents=tuple(draw(agents(n)) for n in range(n_agents)),
        known_slots=KNOWN,
        keypair_policies={
            key: KeypairPolicy(
                draw(slot_maps(large, 2)),
                draw(st.sampled_from([0, 0, 3, 8])),
                draw(st.sampled_from([0, 1, 2])),
            )
            for key in KEYS
        },
        keypair_usage={
            key: KeypairUsage(
                draw(slot_maps(small, 2)), draw(st.integers(0, 2)), draw(st.integers(0, 1))
            )
            for key in KEYS
        },
        user_limits=draw(limits(USERS)),
        project_limits=draw(limits(PROJECTS)),
        domain_limits=draw(limits(DOMAINS)),
        user_usage=draw(limits(USERS)),
        project_usage=draw(limits(PROJECTS)),
    )


configs = st.builds(
    SchedulerConfig,
    ordering=st.sampled_from(list(OrderingPolicy)),
    selector=st.sampled_from(list(AgentSelector)),
    strict_fifo=st.sampled_from([False, False, True]),
    max_sessions_per_round=st.sampled_from([1000, 3]),
)


def placed_totals(plan: Plan, owner_of: Mapping[str, str]) -> dict[str, Slots]:
    out: dict[str, Slots] = {}
    for placement in plan.placements:
        owner = owner_of[placement.session_id]
        out[owner] = out.get(owner, Slots()) + total(k.slots for k in placement.kernels)
    return out


def assert_within(
    limit: Mapping[str, Decimal], before: Mapping[str, Decimal], added: Slots
) -> None:
    """Every slot the plan added to stays within the limit (missing: unlimited)."""
    for slot, amount in added.items():
        if amount > 0 and slot in limit:
            assert before.get(slot, Decimal(0)) + amount <= limit[slot], (slot, limit, before)


@settings(max_examples=200, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(snap=snapshots(), config=configs)
def test_plan_invariants(snap: SchedulingSnapshot, config: SchedulerConfig) -> None:
    plan = schedule(snap, config)
    by_id = {s.id: s for s in snap.pending}
    agents_by_id = {a.id: a for a in snap.agents}

    # Every session is placed, diagnosed or deferred, exactly once.
    placed = [p.session_id for p in plan.placements]
    accounted = placed + list(plan.diagnostics) + list(plan.deferred)
    assert sorted(accounted) == sorted(by_id)
    assert len(plan.placements) <= config.max_sessions_per_round

    # Agents: never over capacity, container limits kept; deltas match placements.
    on_agent: dict[str, Slots] = {}
    containers: Counter[str] = Counter()
    for placement in plan.placements:
        session = by_id[placement.session_id]
        assert [k.kernel_id for k in placement.kernels] == [k.kernel_id for k in session.kernels]
        if session.cluster_mode is ClusterMode.SINGLE_NODE:
            assert len({k.agent_id for k in placement.kernels}) <= 1
        for kernel in placement.kernels:
            target = agents_by_id[kernel.agent_id]
            assert target.architecture == session.architecture
            if session.agent_list:
                assert kernel.agent_id in session.agent_list
            on_agent[kernel.agent_id] = on_agent.get(kernel.agent_id, Slots()) + kernel.slots
            containers[kernel.agent_id] += 1
    deltas = {d.agent_id: d for d in plan.agent_deltas}
    assert set(deltas) == set(containers)
    for agent_id, added in on_agent.items():
        target = agents_by_id[agent_id]
        assert deltas[agent_id].occupied_delta == added
        assert deltas[agent_id].revision == target.revision
        assert deltas[agent_id].containers_delta == containers[agent_id]
        assert_within(target.capacity, target.occupied, added)
        if target.max_containers:
            assert target.container_count + containers[agent_id] <= target.max_containers

    # Owners: keypair, user, project and domain limits; concurrency counts.
    policies, usage = snap.keypair_policies, snap.keypair_usage
    for key, added in placed_totals(plan, {s.id: s.access_key for s in snap.pending}).items():
        assert_within(policies[key].total_resource_slots, usage[key].occupied, added)
    for limit_map, usage_map, attr in (
        (snap.user_limits, snap.user_usage, "user_id"),
        (snap.project_limits, snap.project_usage, "project_id"),
        (snap.domain_limits, snap.domain_usage, "domain_name"),
    ):
        owner_of = {s.id: getattr(s, attr) for s in snap.pending}
        for owner, added in placed_totals(plan, owner_of).items():
            if owner in limit_map:
                assert_within(limit_map[owner], usage_map.get(owner, Slots()), added)
    for key in KEYS:
        mine = [by_id[s] for s in placed if by_id[s].access_key == key]
        system = sum(1 for s in mine if s.session_type is SessionType.SYSTEM)
        policy = policies[key]
        if policy.max_concurrent_sessions and len(mine) - system:
            assert usage[key].concurrent_sessions + len(mine) - system <= (
                policy.max_concurrent_sessions
            )
        if policy.max_concurrent_sftp_sessions and system:
            assert usage[key].concurrent_system_sessions + system <= (
                policy.max_concurrent_sftp_sessions
            )

    # Sessions that must wait never get placed.
    for session_id in placed:
        assert by_id[session_id].dependencies_satisfied is not False
