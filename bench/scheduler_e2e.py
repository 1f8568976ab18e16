#!/usr/bin/env python3
"""bench/scheduler_e2e: sessions/s from enqueue to RUNNING through the whole manager.

Boots a throwaway stack and a manager process, registers N fake agents
(bench/fake_agents.py: AgentService plus the registry stream, answering
CreateKernels with PREPARING/CREATING/STARTED events) in the default scaling
group, then enqueues S sessions (CreateSession with enqueue_only, from C
concurrent callers, as the bootstrapped superadmin) and polls the database
until all of them are RUNNING. Every session goes through the real path:
API + validation + insert, scheduling rounds (snapshot, schedule(), optimistic
apply), dispatch (CreateKernels over gRPC), and three kernel events applied
from the registry streams (in group commit: the bursts of all streams that
arrive while one transaction runs go in the next). Target: 500 sessions/s
end to end.

Baseline, in the same run and before it: the raw PostgreSQL write rate of the
same rows (one transaction per session inserting its session and kernel row,
ORM, C concurrent connections), i.e. what persisting a session costs at all;
the end-to-end path writes each session several times more (created,
scheduled, dispatched, each kernel event). The enqueue
rate alone (time until every CreateSession returned) is reported too, and
where the machine's CPU went during the run (bench/cpu_ledger.py): the
manager, PostgreSQL, this harness (callers and fake agents), Redis, etcd and
the rest, per session, against what the target leaves per session on this
machine's cores. The last line is the JSON summary.

    python bench/scheduler_e2e.py [--agents 20] [--sessions 1000] [--concurrency 32]
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import time
import uuid
from collections.abc import Sequence
from dataclasses import dataclass

from cpu_ledger import Ledger
from fake_agents import FAKE_IMAGE, FakeAgent
from platform_stack import ManagerProcess, bench_dir, booted_manager
from sqlalchemy import func, select
from sqlalchemy.ext.asyncio import AsyncEngine, async_sessionmaker, create_async_engine

from bai.client import AsyncClient
from bai.manager.db.compute import KernelRow, SessionRow
from bai.manager.db.identity import KeypairRow, ProjectRow
from bai.stack.testing import ThrowawayStack

TARGET = 500.0
SLOTS = {"cpu": "1", "mem": str(256 << 20)}
POLL_SECONDS = 0.02


@dataclass
class Outcome:
    enqueued_s: float
    running_s: float
    running: int
    # CPU-seconds from the first enqueue to the last RUNNING, per part of the machine
    # (Ledger.spent: manager, postgres, harness, ..., other, machine).
    cpu: dict[str, float]


async def enqueue(client: AsyncClient, count: int, concurrency: int) -> None:
    todo = iter(range(count))

    async def caller() -> None:
        for _ in todo:
            await client.sessions.create_session(
                image=FAKE_IMAGE, resource_slots=SLOTS, enqueue_only=True
            )

    await asyncio.gather(*(caller() for _ in range(concurrency)))


async def running_count(engine: AsyncEngine) -> int:
    async with engine.connect() as db:
        query = select(func.count()).select_from(SessionRow).where(SessionRow.status == "RUNNING")
        return int((await db.execute(query)).scalar_one())


async def end_to_end(
    manager: ManagerProcess, engine: AsyncEngine, count: int, concurrency: int, limit: float
) -> Outcome:
    """Enqueue `count` sessions and wait until all are RUNNING (or `limit` seconds)."""
    ledger = Ledger(
        {
            "manager": manager.pid,
            "postgres": "postgres",
            # This process: the callers, the fake agents and the poll.
            "harness": os.getpid(),
            "redis": "redis-server",
            "etcd": "etcd",
        }
    )
    async with manager.client() as client:
        cpu_before = ledger.sample()
        started = time.perf_counter()
        enqueuing = asyncio.create_task(enqueue(client, count, concurrency))
        enqueued_s = running_s = 0.0
        running = 0
        while running < count and time.perf_counter() - started < limit:
            await asyncio.sleep(POLL_SECONDS)
            if enqueuing.done() and not enqueued_s:
                enqueuing.result()
                enqueued_s = time.perf_counter() - started
            running = await running_count(engine)
        running_s = time.perf_counter() - started
        cpu = Ledger.spent(cpu_before, ledger.sample())
        await enqueuing
        return Outcome(enqueued_s or running_s, running_s, running, cpu)


async def insert_rate(
    manager: ManagerProcess, engine: AsyncEngine, count: int, workers: int
) -> float:
    """Sessions/s of one transaction per session inserting its session and kernel rows."""
    sessions = async_sessionmaker(engine, expire_on_commit=False)
    async with sessions() as db:
        user_id = await db.scalar(
            select(KeypairRow.user_id).where(KeypairRow.access_key == manager.access_key)
        )
        project_id = await db.scalar(
            select(ProjectRow.id).where(ProjectRow.domain_name == "default")
        )
    assert user_id is not None and project_id is not None
    todo = iter(range(count))

    async def worker() -> None:
        for n in todo:
            async with sessions() as db, db.begin():
                # CANCELLED: terminal, so that no scheduler round ever looks at it.
                session = SessionRow(
                    id=uuid.uuid4(),
                    name=f"baseline-{n}",
                    domain_name="default",
                    project_id=project_id,
                    user_id=user_id,
                    access_key=manager.access_key,
                    scaling_group="default",
                    image=FAKE_IMAGE,
                    status="CANCELLED",
                    requested_slots=SLOTS,
                )
                db.add(session)
                await db.flush()  # no ORM relationship orders the two inserts
                db.add(
                    KernelRow(
                        session_id=session.id,
                        image=FAKE_IMAGE,
                        status="CANCELLED",
                        cluster_role="main",
                        cluster_idx=1,
                        cluster_hostname="main1",
                        requested_slots=SLOTS,
                    )
                )

    started = time.perf_counter()
    await asyncio.gather(*(worker() for _ in range(workers)))
    return count / (time.perf_counter() - started)


async def measure(manager: ManagerProcess, args: argparse.Namespace) -> dict[str, object]:
    engine = create_async_engine(manager.dsn, pool_size=args.concurrency, max_overflow=0)
    agent_slots = {"cpu": "1000", "mem": str(1000 << 30)}
    agents = [
        await FakeAgent.start(manager.address, "default", agent_slots) for _ in range(args.agents)
    ]
    try:
        baseline = await insert_rate(manager, engine, args.sessions, args.concurrency)
        outcome = await end_to_end(manager, engine, args.sessions, args.concurrency, args.limit)
        lost = [f"{a.agent_id}: {a.stream_error}" for a in agents if a.stream_error]
    finally:
        for agent in agents:
            await agent.close()
        await engine.dispose()
    for line in lost:
        print(f"the manager ended an agent's registry stream: {line}")
    value = outcome.running / outcome.running_s
    print(f"{args.agents} fake agents, {args.sessions} sessions, {args.concurrency} callers")
    print(f"raw INSERT (baseline):  {baseline:8.1f} sessions/s")
    print(f"enqueue only:           {args.sessions / outcome.enqueued_s:8.1f} sessions/s")
    print(
        f"enqueue -> RUNNING:     {value:8.1f} sessions/s"
        f"  ({outcome.running}/{args.sessions} in {outcome.running_s:.2f} s)"
    )
    per_session = {
        part: seconds / max(outcome.running, 1) * 1000 for part, seconds in outcome.cpu.items()
    }
    for part, ms in per_session.items():
        share = outcome.cpu[part] / outcome.running_s
        print(f"CPU {part + ':':<19} {ms:8.2f} ms/session ({share:.0%} of a core)")
    cores = os.cpu_count() or 1
    print(
        f"at {TARGET:.0f} sessions/s, {cores} cores leave {cores * 1000 / TARGET:.1f} ms of CPU"
        " per session for all of the above"
    )
    cpu_ms = per_session["manager"]
    return {
        "bench": "scheduler_e2e",
        "value": round(value, 1),
        "unit": "sessions/s",
        "baseline": round(baseline, 1),
        "ratio": round(value / baseline, 3),
        "target": TARGET,
        "ok": value >= TARGET and outcome.running == args.sessions and not lost,
        "agents": args.agents,
        "sessions": args.sessions,
        "running": outcome.running,
        "seconds": round(outcome.running_s, 3),
        "enqueue_rate": round(args.sessions / outcome.enqueued_s, 1),
        "concurrency": args.concurrency,
        "agents_lost": len(lost),
        "manager_cpu_ms_per_session": round(cpu_ms, 2),
        "cpu_ms_per_session": {part: round(ms, 2) for part, ms in per_session.items()},
        "cpus": cores,
    }


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=(__doc__ or "").split("\n\n")[0])
    parser.add_argument("--agents", type=int, default=20)
    parser.add_argument("--sessions", type=int, default=1000)
    parser.add_argument("--concurrency", type=int, default=32, help="concurrent callers")
    parser.add_argument("--limit", type=float, default=300, help="give up after (seconds)")
    parser.add_argument("--db-pool", type=int, default=0, help="manager DB pool (0: default)")
    args = parser.parse_args(argv)
    env = {"BAI_MANAGER__DB__POOL_SIZE": str(args.db_pool)} if args.db_pool else {}
    logs = bench_dir("bai-bench-")
    print(f"logs in {logs}")
    with ThrowawayStack(["postgres", "redis", "etcd"]) as stack:
        with booted_manager(stack, logs, env) as manager:
            summary = asyncio.run(measure(manager, args))
    print(json.dumps(summary))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
