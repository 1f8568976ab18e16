#!/usr/bin/env python3
"""bench/scheduler: placement decisions per second of the pure scheduler.

Builds a synthetic scaling group (mixed agent sizes, a fifth with GPUs, some
load already on them) and a queue of pending sessions (mostly small CPU
sessions, some GPU ones, a few multi-node), then times `schedule()` over the
whole queue a few times (the median counts). The baseline, in the same run,
is what a naive scheduler does: first fit over a plain list of agents with
Decimal `Slots`, over the same queue (timed once: it is slow and steady).
Target: 5,000 decisions/s on one core with 1,000 agents and 10,000 sessions.
The last line is the JSON summary.

    python bench/scheduler.py [--agents 1000] [--sessions 10000] [--rounds 5]
"""

from __future__ import annotations

import argparse
import json
import random
import statistics
import time
from collections.abc import Callable, Sequence
from datetime import UTC, datetime, timedelta

from bai.common.slots import Slots
from bai.manager.scheduling import (
    AgentInfo,
    ClusterMode,
    KernelRequest,
    KeypairPolicy,
    KeypairUsage,
    PendingSession,
    SchedulerConfig,
    SchedulingSnapshot,
    schedule,
)

TARGET = 5000
GIB = 1024**3
KNOWN_SLOTS = frozenset({"cpu", "mem", "cuda.device"})


def synthetic_agents(count: int, rng: random.Random) -> list[AgentInfo]:
    agents = []
    for n in range(count):
        cpu, mem = rng.choice([(16, 64), (32, 128), (64, 256), (96, 512)])
        capacity = {"cpu": cpu, "mem": mem * GIB}
        if n % 5 == 0:
            capacity["cuda.device"] = rng.choice([4, 8])
        used = rng.random() * 0.5
        occupied = {
            "cpu": round(cpu * used, 1),
            "mem": int(mem * GIB * used),
        }
        agents.append(
            AgentInfo(
                id=f"agent-{n:05d}",
                architecture="x86_64",
                capacity=Slots(capacity),
                occupied=Slots({k: str(v) for k, v in occupied.items()}),
                revision=rng.randrange(100),
                container_count=rng.randrange(10),
                max_containers=rng.choice([0, 0, 64]),
            )
        )
    return agents


def synthetic_sessions(count: int, keys: int, rng: random.Random) -> list[PendingSession]:
    start = datetime(2026, 1, 1, tzinfo=UTC)
    sessions = []
    for n in range(count):
        gpu = rng.random() < 0.1
        slots = {
            "cpu": rng.choice(["0.5", "1", "2", "4", "8"]),
            "mem": str(rng.choice([1, 2, 4, 8, 16, 32]) * GIB),
        }
        if gpu:
            slots["cuda.device"] = rng.choice(["1", "1", "2", "4"])
        multi = rng.random() < 0.05
        size = rng.choice([2, 3, 4]) if multi else 1
        key = rng.randrange(keys)
        sessions.append(
            PendingSession(
                id=f"s-{n:06d}",
                access_key=f"AK{key:04d}",
                user_id=f"user-{key:04d}",
                project_id=f"project-{key % 20:02d}",
                domain_name="default",
                created_at=start + timedelta(seconds=n),
                priority=rng.choice([0, 0, 0, 10]),
                cluster_mode=ClusterMode.MULTI_NODE if multi else ClusterMode.SINGLE_NODE,
                kernels=tuple(
                    KernelRequest(f"k-{n:06d}-{i}", "main" if i == 0 else "sub", Slots(slots))
                    for i in range(size)
                ),
            )
        )
    return sessions


def synthetic_snapshot(agents: int, sessions: int, seed: int = 1) -> SchedulingSnapshot:
    rng = random.Random(seed)
    keys = max(1, sessions // 50)
    return SchedulingSnapshot(
        now=datetime(2026, 1, 2, tzinfo=UTC),
        scaling_group="default",
        pending=tuple(synthetic_sessions(sessions, keys, rng)),
        agents=tuple(synthetic_agents(agents, rng)),
        known_slots=KNOWN_SLOTS,
        keypair_policies={
            f"AK{k:04d}": KeypairPolicy(
                Slots({"cpu": 400, "mem": 1600 * GIB, "cuda.device": 16}),
                max_concurrent_sessions=200,
            )
            for k in range(keys)
        },
        keypair_usage={f"AK{k:04d}": KeypairUsage(Slots({"cpu": 4}), 2) for k in range(keys)},
        project_limits={f"project-{p:02d}": Slots({"cuda.device": 200}) for p in range(20)},
    )


def naive_first_fit(snapshot: SchedulingSnapshot, sessions: Sequence[PendingSession]) -> int:
    """First fit over a plain list with Decimal Slots; returns decisions made."""
    free = [agent.capacity - agent.occupied for agent in snapshot.agents]
    for session in sorted(sessions, key=lambda s: (-s.priority, s.created_at)):
        request = Slots()
        for kernel in session.kernels:
            request = request + kernel.slots
        for i, agent_free in enumerate(free):
            if request.fits_in(agent_free):
                free[i] = agent_free - request
                break
    return len(sessions)


def timed(run: Callable[[], object]) -> float:
    started = time.perf_counter()
    run()
    return time.perf_counter() - started


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=(__doc__ or "").split("\n\n")[0])
    parser.add_argument("--agents", type=int, default=1000)
    parser.add_argument("--sessions", type=int, default=10000)
    parser.add_argument("--rounds", type=int, default=5, help="timed rounds (median)")
    args = parser.parse_args(argv)
    snapshot = synthetic_snapshot(args.agents, args.sessions)
    config = SchedulerConfig(max_sessions_per_round=args.sessions)
    plan = schedule(snapshot, config)
    decisions = len(plan.placements) + len(plan.diagnostics)
    rates = [decisions / timed(lambda: schedule(snapshot, config)) for _ in range(args.rounds)]
    value = statistics.median(rates)
    baseline = args.sessions / timed(lambda: naive_first_fit(snapshot, snapshot.pending))
    checks: dict[str, int] = {}
    for diagnostic in plan.diagnostics.values():
        checks[diagnostic.check.name] = checks.get(diagnostic.check.name, 0) + 1
    print(
        f"{args.agents} agents, {args.sessions} sessions: {len(plan.placements)} placed, "
        f"diagnostics {checks}"
    )
    print(f"schedule(): {value:9.0f} decisions/s  (a round: {args.sessions / value:.3f} s)")
    print(f"naive first fit:  {baseline:9.0f} decisions/s")
    print(
        json.dumps(
            {
                "bench": "scheduler_pure",
                "value": round(value, 1),
                "unit": "decisions/s",
                "baseline": round(baseline, 1),
                "ratio": round(value / baseline, 2),
                "target": TARGET,
                "ok": value >= TARGET,
                "agents": args.agents,
                "sessions": args.sessions,
                "placed": len(plan.placements),
            }
        )
    )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
