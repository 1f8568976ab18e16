"""Boot what the session benches need: a throwaway stack, a manager and agents.

The manager and each agent run as their own processes (`python -m bai.manager
start`, `python -m bai.agent start`), as in a deployment, with logs in a temp
dir. Named `platform_stack` (not `platform`) because scripts run from bench/ put
this directory first on sys.path, where `platform` would hide the stdlib module.

    with ThrowawayStack(["postgres", "redis", "etcd"]) as stack, booted_manager(stack, logs) as m:
        with booted_agent(m, "agent-docker", "docker", logs) as agent:
            ...
"""

from __future__ import annotations

import asyncio
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import grpc

from bai.api.manager.v1 import agent_pb2 as manager_agent_pb2
from bai.client import AsyncClient, BaiError, KeypairCredentials
from bai.stack.testing import ThrowawayStack, free_ports

ROOT = Path(__file__).resolve().parent.parent
BENCH_PASSWORD = "bench-password-1"
IMAGE = "bai.local/stable/python:3.11"


@contextmanager
def process(
    argv: list[str], env: Mapping[str, str], log: Path
) -> Iterator[subprocess.Popen[bytes]]:
    """A child process for the duration of the block; SIGTERM (then SIGKILL) after."""
    with open(log, "wb") as out:
        proc = subprocess.Popen(argv, env={**os.environ, **env}, stdout=out, stderr=out, cwd=ROOT)
        try:
            yield proc
        finally:
            proc.terminate()
            try:
                proc.wait(15)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()


def wait_ready(address: str, proc: subprocess.Popen[bytes], log: Path, timeout: float = 60) -> None:
    """Wait until the gRPC server at `address` accepts connections (or its process died)."""
    deadline = time.monotonic() + timeout
    with grpc.insecure_channel(address) as channel:
        while True:
            if proc.poll() is not None:
                raise RuntimeError(f"{proc.args!r} exited with {proc.returncode}; see {log}")
            try:
                grpc.channel_ready_future(channel).result(timeout=0.5)
                return
            except grpc.FutureTimeoutError:
                if time.monotonic() > deadline:
                    raise TimeoutError(f"{address} not ready after {timeout}s; see {log}") from None


def bench_dir(prefix: str) -> Path:
    """A short temp dir (runner sockets live under it and unix socket paths are short)."""
    return Path(tempfile.mkdtemp(prefix=prefix, dir="/tmp"))


@dataclass(frozen=True)
class ManagerProcess:
    pid: int
    address: str
    access_key: str
    secret_key: str
    dsn: str
    logs: Path
    etcd_env: Mapping[str, str]

    def client(self) -> AsyncClient:
        return AsyncClient(
            self.address, KeypairCredentials(self.access_key, self.secret_key), timeout=120
        )


@contextmanager
def booted_manager(
    stack: ThrowawayStack, logs: Path, extra_env: Mapping[str, str] | None = None
) -> Iterator[ManagerProcess]:
    """Migrate and bootstrap the stack's database, then run a manager on free ports."""
    grpc_port, metrics_port = free_ports(2)
    etcd_env = {"__ETCD__HOST": stack.etcd_host, "__ETCD__PORT": str(stack.etcd_port)}
    env = {
        "BAI_MANAGER__DB__URL": stack.pg_dsn,
        "BAI_MANAGER__REDIS__URL": stack.redis_url,
        "BAI_MANAGER__GRPC_PORT": str(grpc_port),
        "BAI_MANAGER__METRICS_PORT": str(metrics_port),
        "BAI_MANAGER__LOG_LEVEL": "warning",
        **{f"BAI_MANAGER{key}": value for key, value in etcd_env.items()},
        **(extra_env or {}),
    }
    boot = subprocess.run(
        [sys.executable, "-m", "bai.manager", "bootstrap", "--password", BENCH_PASSWORD],
        env={**os.environ, **env},
        check=True,
        capture_output=True,
        text=True,
        cwd=ROOT,
    )
    creds = json.loads(boot.stdout[boot.stdout.index("{") :])
    log = logs / "manager.log"
    with process([sys.executable, "-m", "bai.manager", "start"], env, log) as proc:
        address = f"127.0.0.1:{grpc_port}"
        wait_ready(address, proc, log)
        yield ManagerProcess(
            proc.pid,
            address,
            creds["access_key"],
            creds["secret_key"],
            stack.pg_dsn,
            logs,
            etcd_env,
        )


@dataclass(frozen=True)
class AgentProcess:
    agent_id: str
    address: str
    state_dir: Path
    runtime: str

    def runner_socket(self, kernel_id: str) -> Path:
        return self.state_dir / "run" / kernel_id / "runner.sock"


@contextmanager
def booted_agent(
    manager: ManagerProcess,
    agent_id: str,
    runtime: str,
    port_range: tuple[int, int],
    extra_env: Mapping[str, str] | None = None,
) -> Iterator[AgentProcess]:
    """An agent process with `runtime` ("docker" or "process"), ALIVE in the manager.

    Kernels outlive an agent process (it re-adopts them), so destroy sessions
    before leaving the block; Docker containers it left are removed anyway, and
    its state dir is deleted.
    """
    grpc_port, metrics_port = free_ports(2)
    state_dir = bench_dir(f"bai-{runtime[:4]}-")
    env = {
        "BAI_AGENT__AGENT_ID": agent_id,
        "BAI_AGENT__GRPC_PORT": str(grpc_port),
        "BAI_AGENT__METRICS_PORT": str(metrics_port),
        "BAI_AGENT__MANAGER_ADDR": manager.address,
        "BAI_AGENT__STATE_DIR": str(state_dir),
        "BAI_AGENT__RUNTIME__KIND": runtime,
        "BAI_AGENT__PORT_RANGE": json.dumps(list(port_range)),
        "BAI_AGENT__CUDA__ENABLED": "off",
        "BAI_AGENT__LOG_LEVEL": "warning",
        **{f"BAI_AGENT{key}": value for key, value in manager.etcd_env.items()},
        **(extra_env or {}),
    }
    log = manager.logs / f"{agent_id}.log"
    try:
        with process([sys.executable, "-m", "bai.agent", "start"], env, log) as proc:
            address = f"127.0.0.1:{grpc_port}"
            wait_ready(address, proc, log)
            asyncio.run(wait_agent_alive(manager, agent_id))
            yield AgentProcess(agent_id, address, state_dir, runtime)
    finally:
        if runtime == "docker":
            remove_containers(agent_id)
        shutil.rmtree(state_dir, ignore_errors=True)


async def wait_agent_alive(manager: ManagerProcess, agent_id: str, limit: float = 60) -> None:
    alive = manager_agent_pb2.AGENT_STATUS_ALIVE
    loop = asyncio.get_running_loop()
    deadline = loop.time() + limit
    async with manager.client() as client:
        while True:
            try:
                reply = await client.agents.get_agent(agent_id=agent_id)
                if reply.agent.status == alive:
                    return
            except BaiError:  # not registered yet: NOT_FOUND
                pass
            if loop.time() > deadline:
                raise TimeoutError(f"agent {agent_id} is not ALIVE after {limit}s")
            await asyncio.sleep(0.1)


def remove_containers(agent_id: str) -> None:
    listed = subprocess.run(
        ["docker", "ps", "-aq", "--filter", f"label=ai.bai.agent-id={agent_id}"],
        capture_output=True,
        text=True,
        check=False,
    )
    if ids := listed.stdout.split():
        subprocess.run(["docker", "rm", "-f", *ids], capture_output=True, check=False)
