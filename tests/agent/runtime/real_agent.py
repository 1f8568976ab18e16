"""A real agent on a real runtime (dockerd, or bubblewrap with the built image's kept
rootfs) with the real runner, for the mount and app tests."""

from __future__ import annotations

import asyncio
import os
import random
import shutil
import subprocess
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

import pytest

from bai.agent.images.build import DEFAULT_ROOTFS_DIR
from bai.agent.main import RunningAgent, start_agent
from bai.agent.runtime.base import KernelRuntime
from bai.agent.runtime.docker import DockerRuntime
from bai.agent.runtime.process import ProcessRuntime
from bai.agent.runtime.process_cgroup import detect_layout
from bai.api.agent.v1 import agent_pb2
from bai.api.common.v1 import execution_pb2 as ex
from tests.agent.core.helpers import agent_config, plugins, stub_for

RUNTIMES = ("docker", "process")


def skip_unless_runtime(kind: str) -> None:
    if kind == "docker" and not os.path.exists("/var/run/docker.sock"):
        pytest.skip("dockerd is not available: /var/run/docker.sock is absent")
    if kind == "process":
        if os.geteuid() != 0:
            pytest.skip("the process runtime needs root")
        if shutil.which("bwrap") is None:
            pytest.skip("bubblewrap (bwrap) is not installed")
        if detect_layout() is None:
            pytest.skip("no cgroup memory controller is mounted")


def _remove_cgroup(parent: str) -> None:
    layout = detect_layout()
    if layout is None:
        return
    for mount in set(layout.mounts.values()):
        if (mount / parent).is_dir():
            (mount / parent).rmdir()


def _remove_containers(agent_id: str) -> None:
    found = subprocess.run(
        ["docker", "ps", "-aq", "--filter", f"label=ai.bai.agent-id={agent_id}"],
        capture_output=True,
        text=True,
        check=False,
    )
    for container in found.stdout.split():
        subprocess.run(["docker", "rm", "-f", container], capture_output=True, check=False)


@asynccontextmanager
async def real_agent(kind: str, state_dir: Path, **overrides: Any) -> AsyncIterator[RunningAgent]:
    """An agent whose kernels run on `kind`; every sandbox it made is gone afterwards."""
    agent_id = f"agent-{kind}-{os.getpid()}-{state_dir.name[-6:]}"
    cgroup_parent = f"bai-test-{agent_id}"
    runtime: KernelRuntime
    if kind == "docker":
        runtime = DockerRuntime()
    else:
        sandboxes = state_dir / "sandboxes"
        runtime = ProcessRuntime(DEFAULT_ROOTFS_DIR, sandboxes, cgroup_parent=cgroup_parent)
    # A window of its own below the ephemeral range, away from other agents' default
    # pool (30000-31000): a foreign app on an app's port would answer for it.
    start = 31000 + random.randrange(17) * 100
    overrides.setdefault("port_range", (start, start + 100))
    config = agent_config(state_dir, agent_id=agent_id, **overrides)
    agent = await start_agent(config, runtime=runtime, plugins=plugins())
    try:
        yield agent
    finally:
        for record in agent.km.live():
            await agent.km.destroy(record.kernel_id, 0, True, 0)
        await agent.stop()
        if kind == "docker":
            await asyncio.to_thread(_remove_containers, agent_id)
        else:
            await asyncio.to_thread(_remove_cgroup, cgroup_parent)


async def execute(agent: RunningAgent, kernel_id: str, code: str) -> str:
    """Run query code in the kernel through AgentService.Execute; its whole output."""
    channel, stub = stub_for(agent)
    async with channel:
        spec = ex.ExecutionSpec(mode=ex.EXECUTION_MODE_QUERY, code=code)
        request = agent_pb2.ExecuteRequest(kernel_id=kernel_id, start=spec)
        replies = [reply async for reply in stub.Execute(iter([request]))]
    assert replies[-1].result.status == ex.EXECUTION_STATUS_FINISHED, replies[-1]
    return b"".join(r.output.data for r in replies if r.WhichOneof("payload") == "output").decode()
