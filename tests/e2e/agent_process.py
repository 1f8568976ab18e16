"""A real agent process (`python -m bai.agent start`) with the Docker runtime."""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import sys
import tempfile
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from pathlib import Path

from bai.manager.db.compute import AgentRow
from bai.stack.testing import free_ports
from tests.e2e.containers import containers
from tests.e2e.records import agent_row
from tests.e2e.waits import eventually
from tests.manager.fixtures import ManagerHandle, unique

REPO_ROOT = Path(__file__).resolve().parents[2]
MiB = 1 << 20
# What each e2e agent offers: room for two 1-cpu sessions.
AGENT_CPU = "2"
AGENT_MEM = str(2048 * MiB)


@dataclass
class AgentProcess:
    """`python -m bai.agent start` with the Docker runtime, on a short state dir."""

    agent_id: str
    group: str
    manager_addr: str
    state_dir: Path
    grpc_port: int
    log_path: Path
    proc: subprocess.Popen[bytes] | None = None
    starts: int = field(default=0)

    def env(self) -> dict[str, str]:
        env = {k: v for k, v in os.environ.items() if not k.startswith("BAI_")}
        env.update(
            {
                "BAI_AGENT__ETCD__ENABLED": "false",
                "BAI_AGENT__AGENT_ID": self.agent_id,
                "BAI_AGENT__SCALING_GROUP": self.group,
                "BAI_AGENT__MANAGER_ADDR": self.manager_addr,
                "BAI_AGENT__GRPC_PORT": str(self.grpc_port),
                "BAI_AGENT__METRICS_PORT": "0",
                "BAI_AGENT__STATE_DIR": str(self.state_dir),
                "BAI_AGENT__RUNTIME__KIND": "docker",
                # JSON strings: a bare number is parsed as an int, which the
                # str fields refuse (see test_agent_config.py).
                "BAI_AGENT__CPU": f'"{AGENT_CPU}"',
                "BAI_AGENT__MEM": f'"{AGENT_MEM}"',
                "BAI_AGENT__CUDA__ENABLED": "off",
                "BAI_AGENT__STATS_INTERVAL": "1",
                "BAI_AGENT__LOG_LEVEL": "info",
            }
        )
        return env

    def start(self) -> None:
        assert self.proc is None or self.proc.poll() is not None, "the agent already runs"
        self.starts += 1
        log = self.log_path.open("ab")
        log.write(f"--- start {self.starts} ---\n".encode())
        log.flush()
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "bai.agent", "start"],
            env=self.env(),
            cwd=REPO_ROOT,
            stdout=log,
            stderr=subprocess.STDOUT,
        )
        log.close()

    def signal(self, signum: int) -> None:
        assert self.proc is not None and self.proc.poll() is None, "the agent is not running"
        self.proc.send_signal(signum)

    async def wait_exit(self, limit: float = 20.0) -> int:
        proc = self.proc
        assert proc is not None
        await eventually(lambda: proc.poll() is not None, f"agent {self.agent_id} exits", limit)
        return proc.returncode

    async def stop(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                await self.wait_exit()
            except AssertionError:
                self.proc.kill()
                self.proc.wait(10)

    def log_tail(self, lines: int = 40) -> str:
        try:
            return "\n".join(self.log_path.read_text(errors="replace").splitlines()[-lines:])
        except OSError:
            return ""

    def remove_containers(self) -> None:
        ids = containers("ai.bai.agent-id", self.agent_id)
        if ids:
            subprocess.run(["docker", "rm", "-f", *ids], capture_output=True, timeout=60)


async def wait_alive(
    manager: ManagerHandle, agent: AgentProcess, limit: float = 30.0, *, old_boot: str = ""
) -> AgentRow:
    """Until the agent is ALIVE (with old_boot: registered by a later boot, since a
    crashed agent's row stays ALIVE until the lost timeout)."""

    async def alive() -> AgentRow | None:
        assert agent.proc is not None
        if agent.proc.poll() is not None:
            raise AssertionError(f"the agent exited ({agent.proc.returncode}):\n{agent.log_tail()}")
        row = await agent_row(manager, agent.agent_id)
        if row is None or row.status != "ALIVE" or row.boot_id == old_boot:
            return None
        return row

    row: AgentRow = await eventually(alive, f"agent {agent.agent_id} is ALIVE", limit)
    return row


@asynccontextmanager
async def running_agent(
    manager: ManagerHandle, manager_addr: str, group: str
) -> AsyncIterator[AgentProcess]:
    state_dir = Path(tempfile.mkdtemp(prefix="/tmp/bai-e2e-"))
    (port,) = free_ports(1)
    agent = AgentProcess(
        agent_id=unique("e2e-agent"),
        group=group,
        manager_addr=manager_addr,
        state_dir=state_dir,
        grpc_port=port,
        log_path=state_dir / "agent.log",
    )
    agent.start()
    try:
        await wait_alive(manager, agent)
        yield agent
    finally:
        await agent.stop()
        agent.remove_containers()
        shutil.rmtree(state_dir, ignore_errors=True)
