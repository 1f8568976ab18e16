"""A restarted agent (a second agent process over the same state dir and the same
sandboxes) re-adopts live kernels without allocating twice, reports vanished ones
and removes sandboxes it has no record of."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from bai.agent.kernels.records import KernelRecord
from bai.api.agent.v1 import agent_pb2
from bai.api.common.v1 import session_pb2
from bai.common.slots import Slots
from tests.agent.core.helpers import (
    KS,
    create_request,
    event_types,
    kernel_config,
    kernel_events,
    launch,
    stub_for,
    wait_status,
)

LR = session_pb2.LifecycleReason


async def test_restarted_agent_readopts_its_kernels(state_dir: Path) -> None:
    agent, runtime = await launch(state_dir)
    try:
        channel, stub = stub_for(agent)
        async with channel:
            kept, lost = kernel_config(), kernel_config()
            await stub.CreateKernels(create_request(kept))
            await stub.CreateKernels(create_request(lost))
            await wait_status(agent, kept.kernel_id, KS.KERNEL_STATUS_RUNNING)
            await wait_status(agent, lost.kernel_id, KS.KERNEL_STATUS_RUNNING)
        kept_record = agent.km.records[kept.kernel_id]
        ports = list(kept_record.host_ports)
        sandbox = kept_record.sandbox_id
        first_boot = agent.ctx.boot_id
        await agent.stop()
        # While the agent is away: one container vanishes, a stray one appears.
        await runtime.vanish(agent.km.records[lost.kernel_id].sandbox_id)
        stray_dir = state_dir / "stray"
        stray_dir.mkdir()
        stray = await runtime.stray(agent.ctx.agent_id, stray_dir)

        again, _ = await launch(state_dir, runtime=runtime)
        try:
            assert again.ctx.boot_id != first_boot
            record = again.km.records[kept.kernel_id]
            assert record.status == KS.KERNEL_STATUS_RUNNING
            assert record.sandbox_id == sandbox
            assert again.ctx.ports.owned(kept.kernel_id) == ports
            assert again.ctx.allocator.occupied() == Slots({"cpu": "1", "mem": str(2**28)})
            assert again.km.records[lost.kernel_id].status == KS.KERNEL_STATUS_TERMINATED
            assert event_types(again, lost.kernel_id) == ["KERNEL_EVENT_TYPE_TERMINATED"]
            vanished = kernel_events(again, lost.kernel_id)[0]
            assert vanished.reason == LR.LIFECYCLE_REASON_CONTAINER_NOT_FOUND
            assert stray not in runtime.sandboxes
            assert set(runtime.sandboxes) == {sandbox}
            # The re-adopted kernel is watched and executes code as before.
            channel, stub = stub_for(again)
            async with channel:
                got = await stub.GetKernel(agent_pb2.GetKernelRequest(kernel_id=kept.kernel_id))
                assert got.kernel.runtime.host_ports == ports
                await runtime.stop(sandbox, 0)
                await wait_status(again, kept.kernel_id, KS.KERNEL_STATUS_TERMINATED)
                reason = kernel_events(again, kept.kernel_id)[-1].reason
                assert reason == LR.LIFECYCLE_REASON_SELF_TERMINATED
            assert again.ctx.allocator.occupied().nonzero() == Slots()
        finally:
            await again.stop()
    finally:
        await runtime.kill_all()


async def test_kernel_caught_mid_creation_is_cancelled(state_dir: Path) -> None:
    agent, runtime = await launch(state_dir)
    try:
        config = kernel_config()
        # As if the previous agent died between PREPARING and STARTED.
        record = KernelRecord(config=config, cluster=agent_pb2.ClusterInfo())
        record.status = KS.KERNEL_STATUS_CREATING
        agent.ctx.store.save(record)
        damaged = agent.ctx.store.root / "not-json.json"
        damaged.write_text("{", "utf-8")
        await agent.stop()
        again, _ = await launch(state_dir, runtime=runtime)
        try:
            adopted = again.km.records[config.kernel_id]
            assert adopted.status == KS.KERNEL_STATUS_CANCELLED
            assert kernel_events(again, config.kernel_id)[-1].reason == (
                LR.LIFECYCLE_REASON_AGENT_TERMINATION
            )
            on_disk: dict[str, Any] = json.loads(
                again.ctx.store.path_of(config.kernel_id).read_text("utf-8")
            )
            assert on_disk["status"] == "KERNEL_STATUS_CANCELLED"
        finally:
            await again.stop()
    finally:
        await runtime.kill_all()
