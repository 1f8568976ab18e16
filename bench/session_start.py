#!/usr/bin/env python3
"""bench/session_start: time from CreateSession to RUNNING, and Execute round trips.

Boots a throwaway stack (PostgreSQL, Redis, etcd), a manager process and two
agent processes in the default scaling group, one with the Docker runtime and
one with the process (bubblewrap) runtime; sessions are pinned to one or the
other with `agent_list` (the bench runs as the bootstrapped superadmin).

  * Docker: N sessions one after another, each CreateSession (waiting for
    RUNNING) timed on the client from the call to the reply, then destroyed and
    waited for until TERMINATED (untimed) before the next. Interleaved with it,
    the baseline: `docker run -d` of the same image with a long-running python
    command, timed until the command returns, then `docker rm -f` (untimed).
    One untimed warm-up of each comes first. Target: p50 / baseline p50 <= 1.5.
  * Process runtime: M sessions the same way (p50, no target).
  * Execute `print(1)` (query mode) in one RUNNING Docker session, K times each
    through the manager (SDK AsyncClient), straight to the agent's Execute and
    straight to the runner's unix socket, after a few warm-up runs. Target:
    through the manager p50 < 20 ms.

The per-phase breakdown: the session's status history (each status stamped
when the manager applied the agent's event; the client shares the clock),
Docker's own created/started stamps and the mtime of the runner's socket (when
it started listening). Sessions that end without reaching RUNNING are counted
and reported, not timed. The last line is the JSON summary.

    python bench/session_start.py [--sessions 20] [--process-sessions 10] [--execs 100]
"""

from __future__ import annotations

import argparse
import asyncio
import itertools
import json
import subprocess
import time
from collections import defaultdict
from collections.abc import AsyncIterator, Awaitable, Callable, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

import grpc
from latency import p50, percentile, rounded, summary_line
from platform_stack import (
    IMAGE,
    AgentProcess,
    ManagerProcess,
    bench_dir,
    booted_agent,
    booted_manager,
)

from bai.agent.runner.client import RunnerClient, RunSpec
from bai.api.agent.v1 import agent_pb2, agent_pb2_grpc
from bai.api.common.v1 import execution_pb2
from bai.api.common.v1 import session_pb2 as common
from bai.api.manager.v1 import session_pb2
from bai.client import AsyncClient, execute
from bai.stack.testing import ThrowawayStack

TARGET_RATIO = 1.5
EXEC_TARGET_MS = 20.0
SLOTS = {"cpu": "1", "mem": str(256 << 20)}
SLEEPER = ["python3", "-c", "import time; time.sleep(600)"]
WARMUP_EXECS = 5
# Sessions that may fail to start (each reported) before a measure gives up.
MAX_FAILURES = 5
DESTROY_LIMIT_SECONDS = 120
DOCKER_START = "  container created->container started"


class StartFailed(Exception):
    """A session ended (CANCELLED, ...) instead of reaching RUNNING."""


def status_name(value: int) -> str:
    return common.SessionStatus.Name(value).removeprefix("SESSION_STATUS_")  # type: ignore[arg-type]


@dataclass
class StartRuns:
    wall_ms: list[float] = field(default_factory=list)
    # "A->B" -> milliseconds spent between the two statuses, per session.
    phases: dict[str, list[float]] = field(default_factory=lambda: defaultdict(list))

    # Sessions that did not reach RUNNING (status and message), not in the samples.
    failures: list[str] = field(default_factory=list)

    def add(self, wall_ms: float, phases: dict[str, float]) -> None:
        self.wall_ms.append(wall_ms)
        for name, ms in phases.items():
            self.phases[name].append(ms)


def phases_of(session: session_pb2.Session, called: float, replied: float) -> dict[str, float]:
    """Client call -> each session status -> client reply, in milliseconds."""
    out: dict[str, float] = {}
    previous, at = "call", called
    for step in session.status_history:
        now = step.time.ToNanoseconds() / 1e9
        name = status_name(step.status)
        out[f"{previous}->{name}"] = (now - at) * 1000
        previous, at = name, now
    out[f"{previous}->reply"] = (replied - at) * 1000
    return out


def docker_time(stamp: str) -> float:
    """Docker's RFC 3339 nanosecond UTC stamp as epoch seconds (microsecond precision)."""
    whole, _, fraction = stamp.rstrip("Z").partition(".")
    parsed = datetime.fromisoformat(whole).replace(tzinfo=UTC)
    return parsed.timestamp() + float("0." + (fraction or "0")[:6])


def sandbox_phases(session: session_pb2.Session, agent: AgentProcess) -> dict[str, float]:
    """Inside CREATING->RUNNING: Docker's own create/start stamps and the time the
    runner bound its socket (the socket file's mtime), in milliseconds."""
    times = {
        status_name(step.status): step.time.ToNanoseconds() / 1e9 for step in session.status_history
    }
    kernel = session.kernels[0]
    marks = [("CREATING", times["CREATING"])]
    if agent.runtime == "docker":
        inspected = subprocess.run(
            ["docker", "inspect", kernel.container_id], capture_output=True, text=True, check=True
        )
        (container,) = json.loads(inspected.stdout)
        marks.append(("container created", docker_time(container["Created"])))
        marks.append(("container started", docker_time(container["State"]["StartedAt"])))
    socket = agent.runner_socket(kernel.id).stat()
    marks += [("runner listening", socket.st_mtime_ns / 1e9), ("RUNNING", times["RUNNING"])]
    return {f"  {a}->{b}": (t_b - t_a) * 1000 for (a, t_a), (b, t_b) in itertools.pairwise(marks)}


async def start_session(
    client: AsyncClient, agent: AgentProcess
) -> tuple[session_pb2.Session, float, dict[str, float]]:
    """CreateSession pinned to `agent`, waiting for RUNNING: (session, wall ms, phases)."""
    called, started = time.time(), time.perf_counter()
    reply = await client.sessions.create_session(
        image=IMAGE, resource_slots=SLOTS, agent_list=[agent.agent_id], enqueue_only=False
    )
    wall_ms = (time.perf_counter() - started) * 1000
    replied = time.time()
    if reply.session.status != common.SESSION_STATUS_RUNNING:
        raise StartFailed(
            f"{status_name(reply.session.status)}: {reply.session.status_message!r}"
            f" ({reply.session.id})"
        )
    detail = (await client.sessions.get_session(session_id=reply.session.id)).session
    phases = phases_of(detail, called, replied)
    phases.update(await asyncio.to_thread(sandbox_phases, detail, agent))
    return detail, wall_ms, phases


async def destroy_session(client: AsyncClient, session_id: str) -> None:
    """Destroy and wait until TERMINATED, so that teardown never overlaps a measurement."""
    await client.sessions.destroy_session(session_id=session_id)
    async with asyncio.timeout(DESTROY_LIMIT_SECONDS):
        while True:
            reply = await client.sessions.get_session(session_id=session_id)
            if reply.session.status == common.SESSION_STATUS_TERMINATED:
                return
            await asyncio.sleep(0.05)


def docker_run_ms() -> tuple[float, float]:
    """`docker run -d` of the image with a sleeper: (wall ms until the command returned,
    Docker's created->started ms); the container is removed after, untimed."""
    started = time.perf_counter()
    done = subprocess.run(
        ["docker", "run", "-d", IMAGE, *SLEEPER], capture_output=True, text=True, check=True
    )
    elapsed = (time.perf_counter() - started) * 1000
    container_id = done.stdout.strip()
    inspected = subprocess.run(
        ["docker", "inspect", container_id], capture_output=True, text=True, check=True
    )
    (container,) = json.loads(inspected.stdout)
    start_ms = (
        docker_time(container["State"]["StartedAt"]) - docker_time(container["Created"])
    ) * 1000
    subprocess.run(["docker", "rm", "-f", container_id], capture_output=True, check=True)
    return elapsed, start_ms


async def start_counting_failures(
    client: AsyncClient, agent: AgentProcess, runs: StartRuns
) -> tuple[session_pb2.Session, float, dict[str, float]]:
    """start_session, tried again after a session that did not start (noted in runs)."""
    while True:
        try:
            return await start_session(client, agent)
        except StartFailed as exc:
            runs.failures.append(str(exc))
            if len(runs.failures) > MAX_FAILURES:
                raise


async def measure_starts(
    client: AsyncClient, agent: AgentProcess, count: int, baseline: StartRuns | None
) -> StartRuns:
    runs = StartRuns()
    session, _, _ = await start_counting_failures(client, agent, runs)  # warm-up
    await destroy_session(client, session.id)
    if baseline is not None:
        await asyncio.to_thread(docker_run_ms)  # warm-up
    for _ in range(count):
        session, wall_ms, phases = await start_counting_failures(client, agent, runs)
        runs.add(wall_ms, phases)
        await destroy_session(client, session.id)
        if baseline is not None:
            wall_ms, start_ms = await asyncio.to_thread(docker_run_ms)
            baseline.add(wall_ms, {DOCKER_START: start_ms})
    return runs


async def timed(count: int, run: Callable[[], Awaitable[None]]) -> list[float]:
    """`run()` WARMUP_EXECS times untimed, then `count` times timed (ms each)."""
    for _ in range(WARMUP_EXECS):
        await run()
    samples = []
    for _ in range(count):
        started = time.perf_counter()
        await run()
        samples.append((time.perf_counter() - started) * 1000)
    return samples


async def exec_via_manager(client: AsyncClient, session_id: str) -> None:
    output = b""
    async with execute(client, session_id, "print(1)") as run:
        async for response in run:
            if response.HasField("output"):
                output += response.output.data
    if output != b"1\n" or run.exit_code != 0:
        raise RuntimeError(f"unexpected run through the manager: {output!r} {run.result}")


async def exec_via_agent(stub: Any, kernel_id: str) -> None:
    """`stub`: an AgentServiceStub on a grpc.aio channel (the stubs are typed for sync ones)."""
    spec = execution_pb2.ExecutionSpec(mode=execution_pb2.EXECUTION_MODE_QUERY, code="print(1)")

    async def requests() -> AsyncIterator[agent_pb2.ExecuteRequest]:
        yield agent_pb2.ExecuteRequest(kernel_id=kernel_id, start=spec)

    last = None
    async for response in stub.Execute(requests()):
        last = response
    if last is None or last.result.status != execution_pb2.EXECUTION_STATUS_FINISHED:
        raise RuntimeError(f"unexpected run on the agent: {last}")


async def exec_via_runner(runner: RunnerClient) -> None:
    async with await runner.start_run(RunSpec(mode="query", code="print(1)")) as handle:
        async for _event in handle.events():
            pass
    if handle.result is None or handle.result.status != "finished":
        raise RuntimeError(f"unexpected run on the runner: {handle.result}")


async def measure_execs(
    client: AsyncClient, agent: AgentProcess, count: int
) -> dict[str, list[float]]:
    session, _, _ = await start_session(client, agent)
    kernel_id = session.kernels[0].id
    try:
        async with grpc.aio.insecure_channel(agent.address) as channel:
            stub = agent_pb2_grpc.AgentServiceStub(channel)
            runner = RunnerClient(agent.runner_socket(kernel_id))
            return {
                "manager": await timed(count, lambda: exec_via_manager(client, session.id)),
                "agent": await timed(count, lambda: exec_via_agent(stub, kernel_id)),
                "runner": await timed(count, lambda: exec_via_runner(runner)),
            }
    finally:
        await destroy_session(client, session.id)


@dataclass
class Results:
    docker: StartRuns
    baseline: StartRuns
    process: StartRuns | None
    execs: dict[str, list[float]]


async def measure(
    manager: ManagerProcess,
    docker: AgentProcess,
    process: AgentProcess | None,
    args: argparse.Namespace,
) -> Results:
    async with manager.client() as client:
        baseline = StartRuns()
        docker_runs = await measure_starts(client, docker, args.sessions, baseline)
        execs = await measure_execs(client, docker, args.execs)
        process_runs = None
        if process is not None:
            process_runs = await measure_starts(client, process, args.process_sessions, None)
    return Results(docker_runs, baseline, process_runs, execs)


def run_bench(args: argparse.Namespace) -> Results:
    logs = bench_dir("bai-bench-")
    print(f"logs in {logs}")
    with (
        ThrowawayStack(["postgres", "redis", "etcd"]) as stack,
        booted_manager(stack, logs) as manager,
        booted_agent(manager, "bench-docker", "docker", (30000, 30500)) as docker,
    ):
        if args.process_sessions <= 0:
            return asyncio.run(measure(manager, docker, None, args))
        with booted_agent(manager, "bench-process", "process", (30500, 31000)) as process:
            return asyncio.run(measure(manager, docker, process, args))


def print_failures(title: str, runs: StartRuns) -> None:
    for failure in runs.failures:
        print(f"{title}: a session did not start: {failure}")


def print_breakdown(title: str, runs: StartRuns) -> None:
    print(f"{title}: median per phase")
    for name, samples in runs.phases.items():
        print(f"    {name:<32} {p50(samples):8.1f} ms")


def report(results: Results) -> dict[str, object]:
    """Print the table; the JSON summary. Session statuses in the phases are stamped
    when the manager applied the agent's event; "container ..." stamps are Docker's,
    "runner listening" is the mtime of the runner's socket file."""
    docker = results.docker.wall_ms
    baseline = results.baseline.wall_ms
    value, base = p50(docker), p50(baseline)
    ratio = value / base
    process_ms = results.process.wall_ms if results.process else []
    execs = results.execs
    print(summary_line("CreateSession->RUNNING (docker)", docker))
    print(summary_line("docker run -d (baseline)", baseline))
    if process_ms:
        print(summary_line("CreateSession->RUNNING (process)", process_ms))
    for path, samples in execs.items():
        print(summary_line(f"Execute print(1) via {path}", samples))
    print_breakdown("docker sessions", results.docker)
    print_breakdown("docker run -d", results.baseline)
    if results.process:
        print_breakdown("process sessions", results.process)
    print_failures("docker", results.docker)
    if results.process:
        print_failures("process", results.process)
    exec_p50 = p50(execs["manager"])
    return {
        "bench": "session_start",
        "value": rounded(value, 1),
        "unit": "ms",
        "baseline": rounded(base, 1),
        "ratio": rounded(ratio, 3),
        "target": TARGET_RATIO,
        "ok": ratio <= TARGET_RATIO,
        "sessions": len(docker),
        "p95_ms": rounded(percentile(docker, 95), 1),
        "baseline_p95_ms": rounded(percentile(baseline, 95), 1),
        "process_p50_ms": rounded(p50(process_ms), 1),
        "process_sessions": len(process_ms),
        "start_failures": len(results.docker.failures),
        "process_start_failures": len(results.process.failures) if results.process else 0,
        "exec_p50_ms": rounded(exec_p50),
        "exec_p95_ms": rounded(percentile(execs["manager"], 95)),
        "exec_target_ms": EXEC_TARGET_MS,
        "exec_ok": exec_p50 < EXEC_TARGET_MS,
        "exec_agent_p50_ms": rounded(p50(execs["agent"])),
        "exec_runner_p50_ms": rounded(p50(execs["runner"])),
        "phases_p50_ms": {k.strip(): rounded(p50(v), 1) for k, v in results.docker.phases.items()},
        "baseline_start_p50_ms": rounded(p50(results.baseline.phases[DOCKER_START]), 1),
    }


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=(__doc__ or "").split("\n\n")[0])
    parser.add_argument("--sessions", type=int, default=20, help="Docker sessions (and runs)")
    parser.add_argument("--process-sessions", type=int, default=10, help="0: no process agent")
    parser.add_argument("--execs", type=int, default=100, help="Execute calls per path")
    args = parser.parse_args(argv)
    print(json.dumps(report(run_bench(args))))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
