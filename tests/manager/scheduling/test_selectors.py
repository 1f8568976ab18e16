"""Which agent takes a session: selectors, multi-node, designated agents, in-round accounting."""

from __future__ import annotations

from decimal import Decimal

import pytest

from bai.common.slots import Slots
from bai.manager.scheduling import (
    AgentSelector,
    KeypairPolicy,
    Plan,
    SchedulerConfig,
    SchedulingCheck,
    schedule,
)
from tests.manager.scheduling.builders import agent, session, slots, snapshot


def agents_of(plan: Plan) -> dict[str, list[str]]:
    return {p.session_id: [k.agent_id for k in p.kernels] for p in plan.placements}


# Free cpu: a=4, b=8, c=2, all with plenty of mem.
THREE = [agent("a", cpu=4, mem=64), agent("b", cpu=8, mem=64), agent("c", cpu=2, mem=64)]


@pytest.mark.parametrize(
    ("selector", "cpu", "expected"),
    [
        (AgentSelector.CONCENTRATED, 2, "c"),
        (AgentSelector.CONCENTRATED, 3, "a"),
        (AgentSelector.CONCENTRATED, 5, "b"),
        (AgentSelector.DISPERSED, 1, "b"),
        (AgentSelector.DISPERSED, 8, "b"),
        (AgentSelector.ROUND_ROBIN, 1, "a"),
        (AgentSelector.ROUND_ROBIN, 6, "b"),
    ],
)
def test_selector_choice(selector: AgentSelector, cpu: int, expected: str) -> None:
    plan = schedule(snapshot([session("s", cpu=cpu)], THREE), SchedulerConfig(selector=selector))
    assert agents_of(plan) == {"s": [expected]}


@pytest.mark.parametrize(
    ("cursor", "expected", "new_cursor"),
    [(None, ["a", "b"], "b"), ("a", ["b", "c"], "c"), ("b", ["c", "a"], "a")],
)
def test_round_robin_moves_the_cursor(
    cursor: str | None, expected: list[str], new_cursor: str
) -> None:
    pending = [session("s1", at=1), session("s2", at=2)]
    plan = schedule(
        snapshot(pending, THREE, round_robin_cursor=cursor),
        SchedulerConfig(selector=AgentSelector.ROUND_ROBIN),
    )
    assert [agents_of(plan)[s][0] for s in ("s1", "s2")] == expected
    assert plan.round_robin_cursor == new_cursor


def test_cursor_unchanged_when_nothing_is_placed() -> None:
    plan = schedule(
        snapshot([session("s", cpu=99)], THREE, round_robin_cursor="b"),
        SchedulerConfig(selector=AgentSelector.ROUND_ROBIN),
    )
    assert plan.placements == ()
    assert plan.round_robin_cursor == "b"


def test_cpu_sessions_prefer_agents_without_gpus() -> None:
    agents = [agent("gpu", cpu=4, gpu=4), agent("cpu-only", cpu=16)]
    pending = [session("cpu", cpu=2, at=1), session("gpu", cpu=2, gpu=1, at=2)]
    plan = schedule(snapshot(pending, agents))
    assert agents_of(plan) == {"cpu": ["cpu-only"], "gpu": ["gpu"]}


def test_gpu_agents_take_cpu_sessions_when_nothing_else_fits() -> None:
    agents = [agent("gpu", cpu=16, gpu=4), agent("cpu-only", cpu=2)]
    plan = schedule(snapshot([session("s", cpu=8)], agents))
    assert agents_of(plan) == {"s": ["gpu"]}


def test_two_sessions_that_fit_alone_but_not_together() -> None:
    pending = [session("first", cpu=3, at=1), session("second", cpu=3, at=2)]
    plan = schedule(snapshot(pending, [agent("a", cpu=4)]))
    assert agents_of(plan) == {"first": ["a"]}
    shortfalls = plan.diagnostics["second"].shortfalls
    assert [(s.slot, s.requested, s.available) for s in shortfalls] == [
        ("cpu", Decimal(3), Decimal(1))
    ]


def test_in_round_accounting_of_limits_and_counts() -> None:
    pending = [session(f"s{i}", cpu=3, at=i) for i in range(3)]
    snap = snapshot(
        pending,
        [agent("a", cpu=64, mem=64, max_containers=2)],
        keypair_policies={"AK": KeypairPolicy(slots(cpu=7), max_concurrent_sessions=3)},
    )
    plan = schedule(snap)
    assert list(agents_of(plan)) == ["s0", "s1"]
    assert plan.diagnostics["s2"].check is SchedulingCheck.KEYPAIR_RESOURCE_LIMIT
    # Without the quota, the container limit is next.
    plan = schedule(snapshot(pending, [agent("a", cpu=64, mem=64, max_containers=2)]))
    assert plan.diagnostics["s2"].check is SchedulingCheck.CONTAINER_LIMIT


def test_concurrency_counts_sessions_placed_in_the_same_round() -> None:
    pending = [session("s1", at=1), session("s2", at=2)]
    snap = snapshot(
        pending, THREE, keypair_policies={"AK": KeypairPolicy(max_concurrent_sessions=1)}
    )
    plan = schedule(snap)
    assert list(agents_of(plan)) == ["s1"]
    assert plan.diagnostics["s2"].check is SchedulingCheck.CONCURRENCY


def test_single_node_puts_every_kernel_on_one_agent() -> None:
    plan = schedule(snapshot([session("s", cpu=2, kernels=3)], THREE))
    assert agents_of(plan) == {"s": ["b", "b", "b"]}
    (delta,) = plan.agent_deltas
    assert delta.containers_delta == 3
    assert delta.occupied_delta == slots(cpu=6, mem=3)


def test_multi_node_spreads_kernels_that_do_not_fit_together() -> None:
    agents = [agent("a", cpu=6), agent("b", cpu=6)]
    single = schedule(snapshot([session("s", cpu=4, kernels=2)], agents))
    assert single.diagnostics["s"].check is SchedulingCheck.AGENT_RESOURCES
    multi = schedule(snapshot([session("s", cpu=4, kernels=2, multi=True)], agents))
    assert sorted(agents_of(multi)["s"]) == ["a", "b"]


@pytest.mark.parametrize(
    ("selector", "distinct"),
    [(AgentSelector.DISPERSED, 2), (AgentSelector.CONCENTRATED, 1)],
)
def test_multi_node_kernel_by_kernel_choice(selector: AgentSelector, distinct: int) -> None:
    agents = [agent("a", cpu=8), agent("b", cpu=8)]
    plan = schedule(
        snapshot([session("s", cpu=1, kernels=2, multi=True)], agents),
        SchedulerConfig(selector=selector),
    )
    assert len(set(agents_of(plan)["s"])) == distinct


def test_multi_node_is_placed_whole_or_not_at_all() -> None:
    agents = [agent("a", cpu=6), agent("b", cpu=6)]
    pending = [session("three", cpu=4, kernels=3, multi=True, at=1), session("six", cpu=6, at=2)]
    plan = schedule(snapshot(pending, agents))
    assert plan.diagnostics["three"].check is SchedulingCheck.AGENT_RESOURCES
    # The kernels tried for "three" were given back: a whole agent is still free.
    assert list(agents_of(plan)) == ["six"]
    assert [d.agent_id for d in plan.agent_deltas] == [agents_of(plan)["six"][0]]


def test_designated_agents_are_strict() -> None:
    plan = schedule(snapshot([session("s", cpu=1, agent_list=("b",))], THREE))
    assert agents_of(plan) == {"s": ["b"]}


def test_designated_agents_follow_the_selector() -> None:
    pending = [session("s", cpu=1, agent_list=("a", "b"))]
    concentrated = schedule(snapshot(pending, THREE))
    dispersed = schedule(
        snapshot(pending, THREE), SchedulerConfig(selector=AgentSelector.DISPERSED)
    )
    assert agents_of(concentrated) == {"s": ["a"]}
    assert agents_of(dispersed) == {"s": ["b"]}


def test_an_image_no_registry_has_goes_where_it_was_built() -> None:
    # "b" has the most room, but only "a" and "c" hold the image.
    plan = schedule(
        snapshot([session("s", cpu=1, image_agents=("a", "c"))], THREE),
        SchedulerConfig(selector=AgentSelector.DISPERSED),
    )
    assert agents_of(plan) == {"s": ["a"]}
    both = [session("s", cpu=1, agent_list=("b", "c"), image_agents=("a", "c"))]
    assert agents_of(schedule(snapshot(both, THREE))) == {"s": ["c"]}


@pytest.mark.parametrize(
    ("holders", "cpu", "says"),
    [
        ((), 1, "none of the agents holding its image (none) is schedulable here"),
        (("gone",), 1, "none of the agents holding its image (gone) is schedulable here"),
        (("c",), 3, "agent holding its image c (the one with the most free) cannot hold it"),
    ],
)
def test_an_image_no_holder_can_take_waits_and_says_why(
    holders: tuple[str, ...], cpu: int, says: str
) -> None:
    plan = schedule(snapshot([session("s", cpu=cpu, image_agents=holders)], THREE))
    assert plan.placements == ()
    diagnostic = plan.diagnostics["s"]
    assert diagnostic.check is SchedulingCheck.IMAGE_LOCATION
    assert diagnostic.message == says


def test_architecture_picks_matching_agents() -> None:
    agents = [agent("x86", cpu=64), agent("arm", cpu=4, arch="aarch64")]
    plan = schedule(snapshot([session("s", cpu=2, architecture="aarch64")], agents))
    assert agents_of(plan) == {"s": ["arm"]}


def test_agent_deltas_carry_revision_and_new_occupancy() -> None:
    agents = [agent("a", cpu=8, mem=16, used=slots(cpu="1.5", mem=2), revision=41)]
    pending = [session("s1", cpu="0.5", mem=1, at=1), session("s2", cpu=2, mem=3, at=2)]
    (delta,) = schedule(snapshot(pending, agents)).agent_deltas
    assert (delta.agent_id, delta.revision, delta.containers_delta) == ("a", 41, 2)
    assert delta.occupied_delta == slots(cpu="2.5", mem=4)
    assert delta.occupied_after == slots(cpu=4, mem=6)


def test_decisions_are_exact_decimals() -> None:
    agents = [agent("a", cpu="0.3", mem="0.0003")]
    pending = [
        session("s1", cpu="0.1", mem="0.0001", at=1),
        session("s2", cpu="0.2", mem="0.0002", at=2),
        session("s3", cpu="0.0001", mem=0, at=3),
    ]
    plan = schedule(snapshot(pending, agents))
    assert list(agents_of(plan)) == ["s1", "s2"]
    assert plan.diagnostics["s3"].shortfalls[0].available == Decimal(0)
    assert plan.agent_deltas[0].occupied_after == Slots({"cpu": "0.3", "mem": "0.0003"})


def test_large_byte_counts_stay_exact() -> None:
    huge = 2**80
    agents = [agent("a", cpu=1, mem=huge)]
    pending = [session("s1", cpu=0, mem=huge - 1, at=1), session("s2", cpu=0, mem=2, at=2)]
    plan = schedule(snapshot(pending, agents))
    assert list(agents_of(plan)) == ["s1"]
    assert plan.diagnostics["s2"].shortfalls[0].available == Decimal(1)


def test_round_robin_spreads_the_kernels_of_a_multi_node_session() -> None:
    plan = schedule(
        snapshot([session("s", cpu=1, kernels=3, multi=True)], THREE),
        SchedulerConfig(selector=AgentSelector.ROUND_ROBIN),
    )
    assert agents_of(plan) == {"s": ["a", "b", "c"]}
    assert plan.round_robin_cursor == "c"
