"""Kernel lifecycle through a real gRPC AgentService with the fake runtime: events in
the outbox, idempotent create and destroy, capacity, images, batch and OOM exits."""

from __future__ import annotations

from dataclasses import replace
from typing import Any

import grpc
import pytest
from google.rpc import error_details_pb2

from bai.agent.main import RunningAgent
from bai.api.agent.v1 import agent_pb2
from bai.api.common.v1 import image_pb2, session_pb2
from bai.api.manager.v1 import agent_registry_pb2 as reg
from bai.common.slots import Slots
from tests.agent.core.fake_runtime import HostProcessRuntime
from tests.agent.core.helpers import (
    KS,
    create_request,
    event_types,
    eventually,
    kernel_config,
    kernel_events,
    wait_status,
)
from tests.rpc_errors import reason_of, violated_fields

LR = session_pb2.LifecycleReason


def result_reason(status: Any) -> str:
    for detail in status.details:
        info = error_details_pb2.ErrorInfo()
        if detail.Unpack(info):
            return str(info.reason)
    raise AssertionError("no ErrorInfo")


async def test_create_reports_preparing_then_started(agent: RunningAgent, stub: Any) -> None:
    config = kernel_config()
    reply = await stub.CreateKernels(create_request(config))
    (result,) = reply.results
    assert result.kernel_id == config.kernel_id
    assert result.kernel.status == KS.KERNEL_STATUS_PREPARING
    await wait_status(agent, config.kernel_id, KS.KERNEL_STATUS_RUNNING)
    assert event_types(agent, config.kernel_id) == [
        "KERNEL_EVENT_TYPE_PREPARING",
        "KERNEL_EVENT_TYPE_CREATING",
        "KERNEL_EVENT_TYPE_STARTED",
    ]
    started = kernel_events(agent, config.kernel_id)[-1]
    assert started.runtime.container_id
    assert started.runtime.kernel_host == "127.0.0.1"
    assert dict(started.runtime.allocated_slots.slots) == {"cpu": "1", "mem": str(2**28)}
    # ttyd is every kernel's intrinsic app: published on a host port from the pool.
    (ttyd,) = started.runtime.service_ports
    assert ttyd.name == "ttyd" and list(ttyd.container_ports) == [7681]
    assert 30000 <= ttyd.host_ports[0] < 31000
    seqs = [e.seq for e in agent.ctx.outbox.unacked()]
    assert seqs == sorted(seqs) and len(set(seqs)) == len(seqs)
    got = await stub.GetKernel(agent_pb2.GetKernelRequest(kernel_id=config.kernel_id))
    assert got.kernel.status == KS.KERNEL_STATUS_RUNNING
    assert got.kernel.runtime.container_id == started.runtime.container_id


async def test_create_is_idempotent_per_kernel_id(
    agent: RunningAgent, runtime: HostProcessRuntime, stub: Any
) -> None:
    config = kernel_config()
    await stub.CreateKernels(create_request(config))
    await wait_status(agent, config.kernel_id, KS.KERNEL_STATUS_RUNNING)
    again = await stub.CreateKernels(create_request(config))
    assert again.results[0].kernel.status == KS.KERNEL_STATUS_RUNNING
    assert runtime.started == 1
    assert event_types(agent, config.kernel_id).count("KERNEL_EVENT_TYPE_PREPARING") == 1
    assert agent.ctx.allocator.occupied() == Slots({"cpu": "1", "mem": str(2**28)})


async def test_no_capacity_fails_that_kernel_only(agent: RunningAgent, stub: Any) -> None:
    fits = kernel_config()
    too_big = kernel_config(slots={"cpu": "64"})
    too_big.session_id = fits.session_id
    reply = await stub.CreateKernels(create_request(fits, too_big))
    ok, refused = reply.results
    assert ok.kernel.status == KS.KERNEL_STATUS_PREPARING
    assert not refused.HasField("kernel")
    assert refused.error.code == grpc.StatusCode.RESOURCE_EXHAUSTED.value[0]
    assert result_reason(refused.error) == "NO_CAPACITY"
    assert refused.kernel_id not in agent.km.records


async def test_invalid_kernel_id_is_invalid_field(stub: Any) -> None:
    config = kernel_config()
    config.kernel_id = "../../etc"
    with pytest.raises(grpc.aio.AioRpcError) as info:
        await stub.CreateKernels(create_request(config))
    assert info.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert reason_of(info.value) == "INVALID_FIELD"
    assert violated_fields(info.value) == ["kernels[0].kernel_id"]


async def test_destroy_reports_and_releases_and_is_idempotent(
    agent: RunningAgent, runtime: HostProcessRuntime, stub: Any
) -> None:
    config = kernel_config()
    await stub.CreateKernels(create_request(config))
    await wait_status(agent, config.kernel_id, KS.KERNEL_STATUS_RUNNING)
    request = agent_pb2.DestroyKernelRequest(
        kernel_id=config.kernel_id, reason=LR.LIFECYCLE_REASON_USER_REQUESTED
    )
    first = await stub.DestroyKernel(request)
    assert first.found
    assert first.last_stats.kernel_id == config.kernel_id
    assert event_types(agent, config.kernel_id)[-2:] == [
        "KERNEL_EVENT_TYPE_TERMINATING",
        "KERNEL_EVENT_TYPE_TERMINATED",
    ]
    terminated = kernel_events(agent, config.kernel_id)[-1]
    assert terminated.reason == LR.LIFECYCLE_REASON_USER_REQUESTED
    assert not runtime.sandboxes
    assert agent.ctx.allocator.occupied().nonzero() == Slots()
    assert agent.ctx.ports.owned(config.kernel_id) == []
    assert not agent.ctx.scratch_dir(config.kernel_id).exists()
    second = await stub.DestroyKernel(request)
    assert not second.found
    unknown = await stub.DestroyKernel(
        agent_pb2.DestroyKernelRequest(kernel_id="00000000-0000-0000-0000-000000000000")
    )
    assert not unknown.found


async def test_destroy_while_preparing_cancels_creation(
    agent: RunningAgent, runtime: HostProcessRuntime, stub: Any
) -> None:
    config = kernel_config()
    await stub.CreateKernels(create_request(config))
    reply = await stub.DestroyKernel(
        agent_pb2.DestroyKernelRequest(kernel_id=config.kernel_id, forced=True)
    )
    assert reply.found
    assert agent.km.records[config.kernel_id].status == KS.KERNEL_STATUS_TERMINATED
    assert kernel_events(agent, config.kernel_id)[-1].reason == LR.LIFECYCLE_REASON_FORCE_TERMINATED
    assert not runtime.sandboxes
    assert agent.ctx.allocator.occupied().nonzero() == Slots()


async def test_missing_image_under_policy_none_is_cancelled(agent: RunningAgent, stub: Any) -> None:
    config = kernel_config(image="nowhere/none:1", pull_policy=image_pb2.IMAGE_PULL_POLICY_NONE)
    await stub.CreateKernels(create_request(config))
    await wait_status(agent, config.kernel_id, KS.KERNEL_STATUS_CANCELLED)
    assert event_types(agent, config.kernel_id) == [
        "KERNEL_EVENT_TYPE_PREPARING",
        "KERNEL_EVENT_TYPE_CANCELLED",
    ]
    cancelled = kernel_events(agent, config.kernel_id)[-1]
    assert cancelled.reason == LR.LIFECYCLE_REASON_IMAGE_PULL_FAILED
    assert "not on this node" in cancelled.message
    assert agent.ctx.allocator.occupied().nonzero() == Slots()


async def test_image_pull_then_start_and_pull_failure(
    agent: RunningAgent, runtime: HostProcessRuntime, stub: Any
) -> None:
    from tests.agent.core.fake_runtime import IMAGE

    runtime.registry["cr.example/python:pulled"] = runtime.images[IMAGE]
    pulled = kernel_config(image="cr.example/python:pulled")
    failing = kernel_config(image="cr.example/python:absent")
    await stub.CreateKernels(create_request(pulled))
    await stub.CreateKernels(create_request(failing))
    await wait_status(agent, pulled.kernel_id, KS.KERNEL_STATUS_RUNNING)
    await wait_status(agent, failing.kernel_id, KS.KERNEL_STATUS_CANCELLED)
    assert event_types(agent, pulled.kernel_id)[:3] == [
        "KERNEL_EVENT_TYPE_PREPARING",
        "KERNEL_EVENT_TYPE_PULLING",
        "KERNEL_EVENT_TYPE_CREATING",
    ]
    assert event_types(agent, failing.kernel_id) == [
        "KERNEL_EVENT_TYPE_PREPARING",
        "KERNEL_EVENT_TYPE_PULLING",
        "KERNEL_EVENT_TYPE_CANCELLED",
    ]
    image_events = [
        reg.ImageEventType.Name(e.image_event.type)
        for e in agent.ctx.outbox.unacked()
        if e.WhichOneof("payload") == "image_event"
    ]
    assert "IMAGE_EVENT_TYPE_PULL_FINISHED" in image_events
    assert "IMAGE_EVENT_TYPE_PULL_FAILED" in image_events


async def test_an_image_local_to_the_node_is_never_pulled(
    agent: RunningAgent, runtime: HostProcessRuntime, stub: Any
) -> None:
    """Built here (or a process-runtime rootfs): no registry has it, whatever the
    manager's ImageRef and pull policy say."""
    from tests.agent.core.fake_runtime import IMAGE

    runtime.images["bai.local/built:1"] = replace(runtime.images[IMAGE], is_local=True)
    config = kernel_config(
        image="bai.local/built:1", pull_policy=image_pb2.IMAGE_PULL_POLICY_ALWAYS
    )
    await stub.CreateKernels(create_request(config))
    await wait_status(agent, config.kernel_id, KS.KERNEL_STATUS_RUNNING)
    assert event_types(agent, config.kernel_id) == [
        "KERNEL_EVENT_TYPE_PREPARING",
        "KERNEL_EVENT_TYPE_CREATING",
        "KERNEL_EVENT_TYPE_STARTED",
    ]


@pytest.mark.parametrize(
    ("command", "exit_code", "reason", "result"),
    [
        ("echo done", 0, LR.LIFECYCLE_REASON_TASK_FINISHED, session_pb2.SESSION_RESULT_SUCCESS),
        ("exit 3", 3, LR.LIFECYCLE_REASON_TASK_FAILED, session_pb2.SESSION_RESULT_FAILURE),
    ],
)
async def test_batch_kernel_reports_its_result(
    agent: RunningAgent, stub: Any, command: str, exit_code: int, reason: int, result: int
) -> None:
    config = kernel_config(session_type=session_pb2.SESSION_TYPE_BATCH, startup_command=command)
    await stub.CreateKernels(create_request(config))
    await wait_status(agent, config.kernel_id, KS.KERNEL_STATUS_TERMINATED)
    terminated = kernel_events(agent, config.kernel_id)[-1]
    assert terminated.type == reg.KERNEL_EVENT_TYPE_TERMINATED
    assert terminated.reason == reason
    assert terminated.exit_code == exit_code
    (batch,) = [
        e.batch_result
        for e in agent.ctx.outbox.unacked()
        if e.WhichOneof("payload") == "batch_result"
        and e.batch_result.kernel_id == config.kernel_id
    ]
    assert (batch.result, batch.exit_code, batch.reason) == (result, exit_code, reason)
    assert agent.ctx.allocator.occupied().nonzero() == Slots()


async def test_oom_kill_is_reported(
    agent: RunningAgent, runtime: HostProcessRuntime, stub: Any
) -> None:
    config = kernel_config()
    await stub.CreateKernels(create_request(config))
    await wait_status(agent, config.kernel_id, KS.KERNEL_STATUS_RUNNING)
    await runtime.oom_kill(agent.km.records[config.kernel_id].sandbox_id)
    await wait_status(agent, config.kernel_id, KS.KERNEL_STATUS_TERMINATED)
    terminated = kernel_events(agent, config.kernel_id)[-1]
    assert terminated.reason == LR.LIFECYCLE_REASON_OUT_OF_MEMORY
    assert terminated.HasField("exit_code")


async def test_kernel_exiting_on_its_own_is_self_terminated(
    agent: RunningAgent, runtime: HostProcessRuntime, stub: Any
) -> None:
    config = kernel_config()
    await stub.CreateKernels(create_request(config))
    await wait_status(agent, config.kernel_id, KS.KERNEL_STATUS_RUNNING)
    await runtime.stop(agent.km.records[config.kernel_id].sandbox_id, 0)
    await wait_status(agent, config.kernel_id, KS.KERNEL_STATUS_TERMINATED)
    terminated = kernel_events(agent, config.kernel_id)[-1]
    assert terminated.reason == LR.LIFECYCLE_REASON_SELF_TERMINATED
    await eventually(lambda: not runtime.sandboxes, "the exited sandbox is removed")


async def test_restart_is_idempotent_per_request_id(
    agent: RunningAgent, runtime: HostProcessRuntime, stub: Any
) -> None:
    config = kernel_config()
    await stub.CreateKernels(create_request(config))
    await wait_status(agent, config.kernel_id, KS.KERNEL_STATUS_RUNNING)
    request = agent_pb2.RestartKernelRequest(kernel_id=config.kernel_id, request_id="r-1")
    reply = await stub.RestartKernel(request)
    assert reply.kernel.status == KS.KERNEL_STATUS_RUNNING
    await stub.RestartKernel(request)
    assert runtime.started == 2
    assert event_types(agent, config.kernel_id).count("KERNEL_EVENT_TYPE_RESTARTED") == 1
    await stub.RestartKernel(agent_pb2.RestartKernelRequest(kernel_id=config.kernel_id))
    assert runtime.started == 3


async def test_list_sync_and_reset(agent: RunningAgent, stub: Any) -> None:
    first, second = kernel_config(), kernel_config()
    await stub.CreateKernels(create_request(first))
    await stub.CreateKernels(create_request(second))
    await wait_status(agent, first.kernel_id, KS.KERNEL_STATUS_RUNNING)
    await wait_status(agent, second.kernel_id, KS.KERNEL_STATUS_RUNNING)
    listed = await stub.ListKernels(agent_pb2.ListKernelsRequest(session_id=first.session_id))
    assert [k.kernel_id for k in listed.kernels] == [first.kernel_id]
    ghost = "11111111-1111-1111-1111-111111111111"
    sync = await stub.SyncKernelRegistry(
        agent_pb2.SyncKernelRegistryRequest(
            kernels=[
                agent_pb2.KernelRef(kernel_id=first.kernel_id),
                agent_pb2.KernelRef(kernel_id=ghost),
            ],
            destroy_orphans=True,
        )
    )
    assert list(sync.missing_kernel_ids) == [ghost]
    assert list(sync.orphan_kernel_ids) == [second.kernel_id]
    await wait_status(agent, second.kernel_id, KS.KERNEL_STATUS_TERMINATED)
    assert (
        kernel_events(agent, second.kernel_id)[-1].reason
        == LR.LIFECYCLE_REASON_NOT_FOUND_IN_MANAGER
    )
    reset = await stub.ResetAgent(agent_pb2.ResetAgentRequest())
    assert list(reset.destroyed_kernel_ids) == [first.kernel_id]
    assert agent.km.live() == []
    assert (await stub.ResetAgent(agent_pb2.ResetAgentRequest())).destroyed_kernel_ids == []
