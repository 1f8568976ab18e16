"""Building an agent with the fake runtime, and talking to it, for the core tests."""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import Callable
from decimal import Decimal
from pathlib import Path
from typing import Any

import grpc

from bai.agent.config import AgentConfig
from bai.agent.main import RunningAgent, start_agent
from bai.agent.resources.cpu import CpuPlugin
from bai.agent.resources.mem import MemPlugin
from bai.agent.resources.plugin import ComputePlugin
from bai.agent.runner.layout import runner_package_dir
from bai.api.agent.v1 import agent_pb2, agent_pb2_grpc
from bai.api.common.v1 import image_pb2, session_pb2, types_pb2
from bai.api.manager.v1 import agent_registry_pb2 as reg
from bai.stack.testing import free_ports
from tests.agent.core.fake_runtime import IMAGE, HostProcessRuntime

AGENT_ID = "agent-core-test"
GIB = 1024**3
KS = session_pb2.KernelStatus
# Generous: a loaded CI machine may be slow to start a python process.
DEADLINE = 30.0


def plugins() -> list[ComputePlugin]:
    return [CpuPlugin(share=Decimal(4)), MemPlugin(share=4 * GIB)]


def agent_config(state_dir: Path, **overrides: Any) -> AgentConfig:
    (unused,) = free_ports(1)
    values: dict[str, Any] = {
        "grpc_port": 0,
        "metrics_port": 0,
        "etcd": {"enabled": False},
        "agent_id": AGENT_ID,
        "state_dir": str(state_dir),
        "manager_addr": f"127.0.0.1:{unused}",
        "runner_ready_timeout": DEADLINE,
        **overrides,
    }
    return AgentConfig.model_validate(values)


async def launch(
    state_dir: Path, runtime: HostProcessRuntime | None = None, **overrides: Any
) -> tuple[RunningAgent, HostProcessRuntime]:
    runtime = runtime or HostProcessRuntime(runner_package_dir())
    agent = await start_agent(
        agent_config(state_dir, **overrides), runtime=runtime, plugins=plugins()
    )
    return agent, runtime


def stub_for(agent: RunningAgent) -> tuple[grpc.aio.Channel, Any]:
    channel = grpc.aio.insecure_channel(f"127.0.0.1:{agent.grpc_port}")
    return channel, agent_pb2_grpc.AgentServiceStub(channel)


def kernel_config(
    *,
    session_type: int = session_pb2.SESSION_TYPE_INTERACTIVE,
    slots: dict[str, str] | None = None,
    image: str = IMAGE,
    pull_policy: int = image_pb2.IMAGE_PULL_POLICY_TAG,
    startup_command: str = "",
    **fields: Any,
) -> agent_pb2.KernelCreationConfig:
    return agent_pb2.KernelCreationConfig(
        kernel_id=str(uuid.uuid4()),
        session_id=str(uuid.uuid4()),
        session_name="test",
        session_type=session_type,  # type: ignore[arg-type]
        image=image_pb2.ImageRef(canonical=image, architecture="x86_64"),
        pull_policy=pull_policy,  # type: ignore[arg-type]
        resource_slots=types_pb2.ResourceSlots(slots=slots or {"cpu": "1", "mem": str(GIB // 4)}),
        startup_command=startup_command,
        cluster_role="main",
        cluster_idx=1,
        cluster_hostname="main1",
        **fields,
    )


def create_request(*configs: agent_pb2.KernelCreationConfig) -> agent_pb2.CreateKernelsRequest:
    return agent_pb2.CreateKernelsRequest(
        session_id=configs[0].session_id,
        cluster=agent_pb2.ClusterInfo(size=len(configs), hostnames=["main1"]),
        kernels=configs,
    )


async def eventually(check: Callable[[], Any], what: str, deadline: float = DEADLINE) -> Any:
    """Poll `check` until it returns something truthy."""
    loop = asyncio.get_running_loop()
    end = loop.time() + deadline
    while True:
        value = check()
        if asyncio.iscoroutine(value):
            value = await value
        if value:
            return value
        if loop.time() > end:
            raise AssertionError(f"never happened: {what}")
        await asyncio.sleep(0.02)


async def wait_status(agent: RunningAgent, kernel_id: str, status: int) -> None:
    def reached() -> bool:
        record = agent.km.records.get(kernel_id)
        return record is not None and record.status == status

    await eventually(reached, f"{kernel_id} reaches {KS.Name(status)}")  # type: ignore[arg-type]


def kernel_events(agent: RunningAgent, kernel_id: str) -> list[reg.KernelEvent]:
    return [
        e.kernel_event
        for e in agent.ctx.outbox.unacked()
        if e.WhichOneof("payload") == "kernel_event" and e.kernel_event.kernel_id == kernel_id
    ]


def event_types(agent: RunningAgent, kernel_id: str) -> list[str]:
    return [reg.KernelEventType.Name(e.type) for e in kernel_events(agent, kernel_id)]
