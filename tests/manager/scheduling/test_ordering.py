"""Which sessions go first: FIFO, LIFO, priority, DRF, strict FIFO and the round cap."""

from __future__ import annotations

import pytest

from bai.manager.scheduling import (
    KeypairPolicy,
    KeypairUsage,
    OrderingPolicy,
    PendingSession,
    Plan,
    SchedulerConfig,
    SchedulingCheck,
    schedule,
)
from tests.manager.scheduling.builders import agent, session, slots, snapshot


def placed(plan: Plan) -> list[str]:
    return [p.session_id for p in plan.placements]


@pytest.mark.parametrize(
    ("policy", "expected"),
    [
        (OrderingPolicy.FIFO, ["old", "mid", "new"]),
        (OrderingPolicy.LIFO, ["new", "mid", "old"]),
    ],
)
def test_order_within_a_priority(policy: OrderingPolicy, expected: list[str]) -> None:
    pending = [session("mid", at=5), session("new", at=9), session("old", at=1)]
    plan = schedule(snapshot(pending, [agent("a1")]), SchedulerConfig(ordering=policy))
    assert placed(plan) == expected


@pytest.mark.parametrize("policy", list(OrderingPolicy))
def test_higher_priority_first_under_every_policy(policy: OrderingPolicy) -> None:
    pending = [session("old", at=1), session("urgent", at=9, priority=10)]
    # One agent that takes only one of them.
    plan = schedule(snapshot(pending, [agent("a1", cpu=1)]), SchedulerConfig(ordering=policy))
    assert placed(plan) == ["urgent"]
    assert plan.diagnostics["old"].check is SchedulingCheck.AGENT_RESOURCES


@pytest.mark.parametrize(
    ("policy", "winner"),
    [(OrderingPolicy.FIFO, "heavy-user"), (OrderingPolicy.DRF, "light-user")],
)
def test_drf_prefers_the_key_with_the_smaller_dominant_share(
    policy: OrderingPolicy, winner: str
) -> None:
    pending = [
        session("heavy-user", at=1, access_key="HEAVY"),
        session("light-user", at=2, access_key="LIGHT"),
    ]
    snap = snapshot(
        pending,
        [agent("a1", cpu=10, mem=100, used=slots(cpu=6)), agent("a2", cpu=10, mem=100)],
        keypair_usage={"HEAVY": KeypairUsage(slots(cpu=6))},
        # Room for one more session only.
        domain_limits={"domain": slots(cpu=1)},
    )
    plan = schedule(snap, SchedulerConfig(ordering=policy))
    assert placed(plan) == [winner]


def test_drf_re_evaluates_shares_after_each_placement() -> None:
    pending = [session(f"a{i}", at=i, access_key="A", cpu=2) for i in range(3)] + [
        session(f"b{i}", at=10 + i, access_key="B", cpu=1) for i in range(3)
    ]
    plan = schedule(
        snapshot(pending, [agent("big", cpu=100, mem=100)]),
        SchedulerConfig(ordering=OrderingPolicy.DRF),
    )
    # A's sessions take twice B's cpu, so B catches up with two sessions per A session.
    assert placed(plan) == ["a0", "b0", "b1", "a1", "b2", "a2"]


def test_backfill_places_smaller_sessions_behind_a_blocked_one() -> None:
    pending = [session("big", cpu=8, at=1), session("small", cpu=1, at=2)]
    plan = schedule(snapshot(pending, [agent("a1", cpu=4)]), SchedulerConfig(strict_fifo=False))
    assert placed(plan) == ["small"]
    assert plan.diagnostics["big"].check is SchedulingCheck.AGENT_RESOURCES


def test_strict_fifo_stops_at_the_first_session_blocked_on_agents() -> None:
    pending = [session("big", cpu=8, at=1), session("small", cpu=1, at=2)]
    plan = schedule(snapshot(pending, [agent("a1", cpu=4)]), SchedulerConfig(strict_fifo=True))
    assert plan.placements == ()
    assert plan.diagnostics["big"].check is SchedulingCheck.AGENT_RESOURCES
    assert plan.diagnostics["small"].check is SchedulingCheck.PRIORITY
    assert "big" in plan.diagnostics["small"].message


@pytest.mark.parametrize(
    "blocked",
    [
        session("over-quota", cpu=2, at=1, access_key="POOR"),
        session("unknown-slot", at=1, extra={"tpu.device": 1}),
        session("arm", at=1, architecture="aarch64"),
    ],
    ids=["own quota", "unknown slot", "architecture"],
)
def test_strict_fifo_is_not_stopped_by_reasons_of_the_session_itself(
    blocked: PendingSession,
) -> None:
    pending = [blocked, session("small", cpu=1, at=2)]
    snap = snapshot(
        pending,
        [agent("a1", cpu=4)],
        keypair_policies={"POOR": KeypairPolicy(slots(cpu=1))},
    )
    plan = schedule(snap, SchedulerConfig(strict_fifo=True))
    assert placed(plan) == ["small"]


def test_max_sessions_per_round_defers_the_rest() -> None:
    pending = [session(f"s{i}", at=i) for i in range(4)]
    plan = schedule(snapshot(pending, [agent("a1")]), SchedulerConfig(max_sessions_per_round=2))
    assert placed(plan) == ["s0", "s1"]
    assert plan.deferred == ("s2", "s3")
    assert plan.diagnostics == {}
