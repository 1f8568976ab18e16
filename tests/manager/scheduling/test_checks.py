"""Each check yields its diagnostic, with the right shortfalls, in the right order."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import timedelta
from decimal import Decimal
from typing import Any

import pytest

from bai.api.manager.v1 import session_pb2
from bai.manager.scheduling import (
    KeypairPolicy,
    KeypairUsage,
    PendingSession,
    SchedulingCheck,
    SessionType,
    schedule,
)
from bai.manager.scheduling.snapshot import AgentInfo
from tests.manager.scheduling.builders import T0, agent, session, slots, snapshot

LATER = T0 + timedelta(hours=2)


@dataclass
class Case:
    name: str
    pending: PendingSession
    agents: list[AgentInfo] = field(default_factory=lambda: [agent("a1")])
    fields: dict[str, Any] = field(default_factory=dict)
    # None: the session is placed.
    check: SchedulingCheck | None = None
    shortfalls: list[tuple[str, str, str]] = field(default_factory=list)
    agent_id: str | None = None


CASES = [
    Case("fits", session("s")),
    Case(
        "reserved time",
        session("s", starts_at=LATER),
        check=SchedulingCheck.RESERVED_TIME,
    ),
    Case("start time reached", session("s", starts_at=T0)),
    Case(
        "dependencies",
        session("s", dependencies_satisfied=False),
        check=SchedulingCheck.DEPENDENCIES,
    ),
    Case("dependencies met", session("s", dependencies_satisfied=True)),
    Case(
        "concurrency",
        session("s"),
        fields={
            "keypair_policies": {"AK": KeypairPolicy(max_concurrent_sessions=2)},
            "keypair_usage": {"AK": KeypairUsage(concurrent_sessions=2)},
        },
        check=SchedulingCheck.CONCURRENCY,
    ),
    Case(
        "sftp concurrency",
        session("s", session_type=SessionType.SYSTEM),
        fields={
            "keypair_policies": {"AK": KeypairPolicy(max_concurrent_sftp_sessions=1)},
            "keypair_usage": {"AK": KeypairUsage(concurrent_system_sessions=1)},
        },
        check=SchedulingCheck.SFTP_CONCURRENCY,
    ),
    Case(
        "a system session does not count against max_concurrent_sessions",
        session("s", session_type=SessionType.SYSTEM),
        fields={
            "keypair_policies": {"AK": KeypairPolicy(max_concurrent_sessions=1)},
            "keypair_usage": {"AK": KeypairUsage(concurrent_sessions=1)},
        },
    ),
    Case(
        "keypair resource limit",
        session("s", cpu=2),
        fields={
            "keypair_policies": {"AK": KeypairPolicy(slots(cpu=4))},
            "keypair_usage": {"AK": KeypairUsage(slots(cpu=3))},
        },
        check=SchedulingCheck.KEYPAIR_RESOURCE_LIMIT,
        shortfalls=[("cpu", "2", "1")],
    ),
    Case(
        "a slot missing from a limit is unlimited",
        session("s", cpu=2, mem=15),
        fields={"keypair_policies": {"AK": KeypairPolicy(slots(cpu=4))}},
    ),
    Case(
        "usage above a limit in a slot not asked for does not block",
        session("s", cpu=0, mem=1),
        fields={
            "keypair_policies": {"AK": KeypairPolicy(slots(cpu=4))},
            "keypair_usage": {"AK": KeypairUsage(slots(cpu=10))},
        },
    ),
    Case(
        "user resource limit",
        session("s", mem=1),
        fields={"user_limits": {"user": slots(mem=8)}, "user_usage": {"user": slots(mem="7.5")}},
        check=SchedulingCheck.USER_RESOURCE_LIMIT,
        shortfalls=[("mem", "1", "0.5")],
    ),
    Case(
        "project resource limit",
        session("s", gpu=2),
        agents=[agent("g1", gpu=4)],
        fields={"project_limits": {"project": slots(gpu=1)}},
        check=SchedulingCheck.PROJECT_RESOURCE_LIMIT,
        shortfalls=[("cuda.device", "2", "1")],
    ),
    Case(
        "domain resource limit, every slot short",
        session("s", cpu=3, mem=3),
        fields={
            "domain_limits": {"domain": slots(cpu=10, mem=10)},
            "domain_usage": {"domain": slots(cpu=9, mem=8)},
        },
        check=SchedulingCheck.DOMAIN_RESOURCE_LIMIT,
        shortfalls=[("cpu", "3", "1"), ("mem", "3", "2")],
    ),
    Case(
        "keypair is checked before user",
        session("s", cpu=2),
        fields={
            "keypair_policies": {"AK": KeypairPolicy(slots(cpu=1))},
            "user_limits": {"user": slots(cpu=1)},
        },
        check=SchedulingCheck.KEYPAIR_RESOURCE_LIMIT,
        shortfalls=[("cpu", "2", "1")],
    ),
    Case(
        "reserved time is checked before limits",
        session("s", cpu=2, starts_at=LATER),
        fields={"keypair_policies": {"AK": KeypairPolicy(slots(cpu=1))}},
        check=SchedulingCheck.RESERVED_TIME,
    ),
    Case(
        "unknown slot",
        session("s", extra={"tpu.device": 1}),
        check=SchedulingCheck.AGENT_RESOURCES,
        shortfalls=[("tpu.device", "1", "0")],
    ),
    Case(
        "architecture",
        session("s", architecture="aarch64"),
        check=SchedulingCheck.ARCHITECTURE,
    ),
    Case(
        "designated agent absent",
        session("s", agent_list=("nope",)),
        check=SchedulingCheck.DESIGNATED_AGENT,
    ),
    Case(
        "designated agent too small",
        session("s", cpu=6, agent_list=("a1",)),
        agents=[agent("a1", cpu=4), agent("a2", cpu=8)],
        check=SchedulingCheck.DESIGNATED_AGENT,
        shortfalls=[("cpu", "6", "4")],
        agent_id="a1",
    ),
    Case(
        "designated agent of another architecture",
        session("s", agent_list=("arm",)),
        agents=[agent("arm", arch="aarch64"), agent("x86")],
        check=SchedulingCheck.DESIGNATED_AGENT,
    ),
    Case(
        "agent resources: the most any agent has free",
        session("s", cpu=16, mem=1),
        agents=[agent("a1", cpu=8), agent("a2", cpu=12, used=slots(cpu=2))],
        check=SchedulingCheck.AGENT_RESOURCES,
        shortfalls=[("cpu", "16", "10")],
    ),
    Case(
        "agent resources: no GPU agent",
        session("s", gpu=1),
        check=SchedulingCheck.AGENT_RESOURCES,
        shortfalls=[("cuda.device", "1", "0")],
    ),
    Case(
        "agent resources: every slot fits somewhere, not together",
        session("s", cpu=4, mem=4),
        agents=[
            agent("a1", cpu=8, mem=8, used=slots(mem=7)),
            agent("a2", cpu=8, mem=8, used=slots(cpu=7)),
        ],
        check=SchedulingCheck.AGENT_RESOURCES,
        # The agent with the most of the dominant slot (cpu and mem tie: cpu sorts first).
        shortfalls=[("mem", "4", "1")],
        agent_id="a1",
    ),
    Case(
        "container limit",
        session("s"),
        agents=[agent("a1", containers=3, max_containers=3)],
        check=SchedulingCheck.CONTAINER_LIMIT,
        agent_id="a1",
    ),
    Case(
        "container limit counts every kernel of a single-node session",
        session("s", kernels=2),
        agents=[agent("a1", containers=2, max_containers=3)],
        check=SchedulingCheck.CONTAINER_LIMIT,
        agent_id="a1",
    ),
]


@pytest.mark.parametrize("case", CASES, ids=[c.name for c in CASES])
def test_check(case: Case) -> None:
    plan = schedule(snapshot([case.pending], case.agents, **case.fields))
    if case.check is None:
        assert [p.session_id for p in plan.placements] == ["s"]
        assert plan.diagnostics == {}
        return
    assert plan.placements == ()
    diagnostic = plan.diagnostics["s"]
    assert diagnostic.check is case.check, diagnostic.message
    assert [(s.slot, s.requested, s.available) for s in diagnostic.shortfalls] == [
        (slot, Decimal(want), Decimal(have)) for slot, want, have in case.shortfalls
    ]
    assert diagnostic.agent_id == case.agent_id
    assert diagnostic.message


def test_check_names_and_numbers_match_the_contract() -> None:
    contract = {
        name.removeprefix("SCHEDULING_CHECK_"): number
        for name, number in session_pb2.SchedulingCheck.items()
        if number
    }
    assert {check.name: check.value for check in SchedulingCheck} == contract
