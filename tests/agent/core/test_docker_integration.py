"""The agent core with the real DockerRuntime and the real in-kernel runner, on the
locally built kernel image: create, execute, batch result, destroy."""

from __future__ import annotations

import asyncio
import os
import subprocess
from pathlib import Path

import pytest

from bai.agent.main import start_agent
from bai.api.agent.v1 import agent_pb2
from bai.api.common.v1 import execution_pb2 as ex
from bai.api.common.v1 import session_pb2
from bai.api.manager.v1 import agent_registry_pb2 as reg
from tests.agent.core.helpers import (
    KS,
    agent_config,
    create_request,
    kernel_config,
    kernel_events,
    plugins,
    stub_for,
    wait_status,
)

IMAGE = "bai.local/stable/python:3.11"
LR = session_pb2.LifecycleReason


def _image_present() -> bool:
    try:
        done = subprocess.run(
            ["docker", "image", "inspect", IMAGE], capture_output=True, timeout=30, check=False
        )
    except (OSError, subprocess.TimeoutExpired):
        return False
    return done.returncode == 0


pytestmark = [
    pytest.mark.skipif(
        not os.path.exists("/var/run/docker.sock"), reason="dockerd is not running here"
    ),
    pytest.mark.skipif(
        os.path.exists("/var/run/docker.sock") and not _image_present(),
        reason=f"{IMAGE} is not built (bai agent build-image)",
    ),
]


def _containers(agent_id: str) -> list[str]:
    done = subprocess.run(
        ["docker", "ps", "-aq", "--filter", f"label=ai.bai.agent-id={agent_id}"],
        capture_output=True,
        text=True,
        check=True,
    )
    return done.stdout.split()


async def test_docker_kernel_end_to_end(state_dir: Path) -> None:
    from bai.agent.runtime.docker import DockerRuntime

    config = agent_config(state_dir, agent_id=f"agent-docker-{os.getpid()}")
    agent = await start_agent(config, runtime=DockerRuntime(), plugins=plugins())
    try:
        channel, stub = stub_for(agent)
        async with channel:
            interactive = kernel_config(image=IMAGE)
            batch = kernel_config(
                image=IMAGE,
                session_type=session_pb2.SESSION_TYPE_BATCH,
                startup_command="echo batch-out; exit 5",
            )
            await stub.CreateKernels(create_request(interactive))
            await stub.CreateKernels(create_request(batch))
            await wait_status(agent, interactive.kernel_id, KS.KERNEL_STATUS_RUNNING)
            # The image has the uid-match feature and the manager sent uid 0: the work user.
            spec = ex.ExecutionSpec(
                mode=ex.EXECUTION_MODE_QUERY,
                code=(
                    "import os\nopen('/home/work/out.txt', 'w').write('x')\n"
                    "print(6 * 7, os.environ['BAI_CLUSTER_ROLE'], os.getuid())"
                ),
            )
            replies = [
                r
                async for r in stub.Execute(
                    iter([agent_pb2.ExecuteRequest(kernel_id=interactive.kernel_id, start=spec)])
                )
            ]
            out = b"".join(r.output.data for r in replies if r.WhichOneof("payload") == "output")
            assert out == b"42 main 1000\n"
            assert replies[-1].result.status == ex.EXECUTION_STATUS_FINISHED
            written = agent.ctx.scratch_dir(interactive.kernel_id) / "out.txt"
            assert (written.stat().st_uid, written.stat().st_gid) == (1000, 1000)
            await wait_status(agent, batch.kernel_id, KS.KERNEL_STATUS_TERMINATED)
            terminated = kernel_events(agent, batch.kernel_id)[-1]
            assert (terminated.reason, terminated.exit_code) == (LR.LIFECYCLE_REASON_TASK_FAILED, 5)
            results = [
                e.batch_result
                for e in agent.ctx.outbox.unacked()
                if e.WhichOneof("payload") == "batch_result"
            ]
            assert results[0].result == session_pb2.SESSION_RESULT_FAILURE
            destroyed = await stub.DestroyKernel(
                agent_pb2.DestroyKernelRequest(kernel_id=interactive.kernel_id, forced=True)
            )
            assert destroyed.found
            types = [
                reg.KernelEventType.Name(e.type)
                for e in kernel_events(agent, interactive.kernel_id)
            ]
            assert types[-1] == "KERNEL_EVENT_TYPE_TERMINATED"
        assert await asyncio.to_thread(_containers, config.agent_id) == []
    finally:
        await agent.stop()
        for container in await asyncio.to_thread(_containers, config.agent_id):
            await asyncio.to_thread(
                subprocess.run, ["docker", "rm", "-f", container], capture_output=True, check=False
            )
