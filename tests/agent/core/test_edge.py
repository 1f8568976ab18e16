"""The AgentService edge: internal token, agent id, ports, health, images, apps later."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import grpc
import pytest
from google.protobuf.duration_pb2 import Duration

from bai.agent.main import RunningAgent
from bai.api.agent.v1 import agent_pb2
from bai.api.common.v1 import image_pb2
from tests.agent.core.fake_runtime import IMAGE, HostProcessRuntime
from tests.agent.core.helpers import AGENT_ID, launch, stub_for
from tests.rpc_errors import reason_of

TOKEN = "s3cret-internal"


@pytest.mark.parametrize(
    ("metadata", "code", "reason"),
    [
        ((), grpc.StatusCode.UNAUTHENTICATED, "CREDENTIALS_MISSING"),
        ((("x-bai-internal-token", "wrong"),), grpc.StatusCode.UNAUTHENTICATED, "TOKEN_INVALID"),
        (
            (("x-bai-internal-token", TOKEN), ("x-bai-agent-id", "someone-else")),
            grpc.StatusCode.FAILED_PRECONDITION,
            "AGENT_MISMATCH",
        ),
    ],
)
async def test_caller_checks(
    state_dir: Path, metadata: tuple[tuple[str, str], ...], code: grpc.StatusCode, reason: str
) -> None:
    agent, runtime = await launch(state_dir, internal_token=TOKEN)
    channel, stub = stub_for(agent)
    try:
        with pytest.raises(grpc.aio.AioRpcError) as info:
            await stub.GetHealth(agent_pb2.GetHealthRequest(), metadata=metadata)
        assert info.value.code() == code
        assert reason_of(info.value) == reason
        # Streams are guarded the same way.
        with pytest.raises(grpc.aio.AioRpcError) as streamed:
            async for _ in stub.WatchStats(agent_pb2.WatchStatsRequest(), metadata=metadata):
                pass
        assert reason_of(streamed.value) == reason
        good = (("x-bai-internal-token", TOKEN), ("x-bai-agent-id", AGENT_ID))
        health = await stub.GetHealth(agent_pb2.GetHealthRequest(), metadata=good)
        assert health.agent_id == AGENT_ID
    finally:
        await channel.close()
        await agent.stop()
        await runtime.kill_all()


async def test_health_and_hardware(agent: RunningAgent, stub: Any) -> None:
    health = await stub.GetHealth(agent_pb2.GetHealthRequest())
    assert health.boot_id == agent.ctx.boot_id
    checks = {c.name: c.ok for c in health.checks}
    assert checks["container-runtime"] is True
    assert checks["manager-stream"] is False  # no manager in this test
    assert health.status == agent_pb2.HEALTH_STATUS_DEGRADED
    hardware = (await stub.GatherHardwareInfo(agent_pb2.GatherHardwareInfoRequest())).hardware
    assert hardware.architecture in ("x86_64", "aarch64")
    assert {p.key for p in hardware.compute_plugins} == {"cpu", "mem"}
    assert hardware.container_runtime == "fake host processes"


async def test_assign_port_is_idempotent_per_request_id(agent: RunningAgent, stub: Any) -> None:
    first = await stub.AssignPort(agent_pb2.AssignPortRequest(request_id="req-1"))
    again = await stub.AssignPort(agent_pb2.AssignPortRequest(request_id="req-1"))
    other = await stub.AssignPort(agent_pb2.AssignPortRequest(request_id="req-2"))
    assert first.port == again.port != other.port
    await stub.ReleasePort(agent_pb2.ReleasePortRequest(port=first.port))
    await stub.ReleasePort(agent_pb2.ReleasePortRequest(port=first.port))
    with pytest.raises(grpc.aio.AioRpcError) as info:
        await stub.ReleasePort(agent_pb2.ReleasePortRequest(port=80))
    assert reason_of(info.value) == "INVALID_FIELD"


async def test_images(agent: RunningAgent, runtime: HostProcessRuntime, stub: Any) -> None:
    listed = await stub.ListImages(agent_pb2.ListImagesRequest())
    assert [i.image.canonical for i in listed.images] == [IMAGE]
    present = [
        r
        async for r in stub.CheckAndPullImage(
            agent_pb2.CheckAndPullImageRequest(image=image_pb2.ImageRef(canonical=IMAGE))
        )
    ]
    assert present[-1].result.outcome == agent_pb2.PULL_OUTCOME_ALREADY_PRESENT
    runtime.registry["cr.example/x:1"] = runtime.images[IMAGE]
    pulled = [
        r
        async for r in stub.CheckAndPullImage(
            agent_pb2.CheckAndPullImageRequest(image=image_pb2.ImageRef(canonical="cr.example/x:1"))
        )
    ]
    assert pulled[0].WhichOneof("payload") == "progress"
    assert pulled[-1].result.outcome == agent_pb2.PULL_OUTCOME_PULLED
    with pytest.raises(grpc.aio.AioRpcError) as info:
        async for _ in stub.CheckAndPullImage(
            agent_pb2.CheckAndPullImageRequest(
                image=image_pb2.ImageRef(canonical="cr.example/y:1"),
                pull_policy=image_pb2.IMAGE_PULL_POLICY_NONE,
            )
        ):
            pass
    assert reason_of(info.value) == "IMAGE_NOT_FOUND"
    # A pull that outlasts the request's timeout gives up with a reason.
    runtime.registry["cr.example/slow:1"] = runtime.images[IMAGE]
    runtime.pull_delay = 5.0
    slow = agent_pb2.CheckAndPullImageRequest(
        image=image_pb2.ImageRef(canonical="cr.example/slow:1"), timeout=Duration(nanos=200_000_000)
    )
    with pytest.raises(grpc.aio.AioRpcError) as info:
        async for _ in stub.CheckAndPullImage(slow):
            pass
    assert info.value.code() == grpc.StatusCode.UNAVAILABLE
    assert reason_of(info.value) == "IMAGE_PULL_FAILED"
    assert "cr.example/slow:1" not in runtime.images
    runtime.pull_delay = 0.0
    negative = agent_pb2.CheckAndPullImageRequest(
        image=image_pb2.ImageRef(canonical=IMAGE), timeout=Duration(seconds=-1)
    )
    with pytest.raises(grpc.aio.AioRpcError) as info:
        async for _ in stub.CheckAndPullImage(negative):
            pass
    assert reason_of(info.value) == "INVALID_FIELD"
    purged = await stub.PurgeImages(
        agent_pb2.PurgeImagesRequest(images=["cr.example/x:1", "gone:1"])
    )
    assert [r.HasField("error") for r in purged.results] == [False, False]
    assert "cr.example/x:1" not in runtime.images


async def test_apps_of_an_unknown_kernel_are_not_found(stub: Any) -> None:
    for call in (
        stub.StartService(agent_pb2.StartServiceRequest(kernel_id="k", service="jupyter")),
        stub.ShutdownService(agent_pb2.ShutdownServiceRequest(kernel_id="k", service="jupyter")),
    ):
        with pytest.raises(grpc.aio.AioRpcError) as info:
            await call
        assert info.value.code() == grpc.StatusCode.NOT_FOUND
        assert reason_of(info.value) == "NOT_FOUND"
