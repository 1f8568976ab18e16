"""AgentService.CommitKernel on a real agent with the real runner: on dockerd it
streams progress then the new image; the process runtime refuses with a reason."""

from __future__ import annotations

import asyncio
import subprocess
import uuid
from pathlib import Path
from typing import Any

import aiodocker
import grpc
import pytest
from google.rpc import error_details_pb2

from bai.agent.main import RunningAgent
from bai.agent.runtime.base import LABEL_KERNEL_ID
from bai.api.agent.v1 import agent_pb2
from bai.api.common.v1 import image_pb2
from tests.agent.core.helpers import KS, create_request, kernel_config, stub_for, wait_status
from tests.agent.runtime.real_agent import execute, real_agent, skip_unless_runtime
from tests.rpc_errors import reason_of, status_of, violated_fields


def error_metadata(exc: grpc.aio.AioRpcError) -> dict[str, str]:
    for detail in status_of(exc).details:
        info = error_details_pb2.ErrorInfo()
        if detail.Unpack(info):
            return dict(info.metadata)
    raise AssertionError("no ErrorInfo in status details")


def commit_request(kernel_id: str, canonical: str, **fields: Any) -> agent_pb2.CommitKernelRequest:
    return agent_pb2.CommitKernelRequest(
        kernel_id=kernel_id, target=image_pb2.ImageRef(canonical=canonical), **fields
    )


async def commit(stub: Any, request: agent_pb2.CommitKernelRequest) -> list[Any]:
    return [reply async for reply in stub.CommitKernel(request)]


async def running_kernel(agent: RunningAgent, image: str, environ: dict[str, str]) -> str:
    config = kernel_config(image=image, environ=environ)
    channel, stub = stub_for(agent)
    async with channel:
        await stub.CreateKernels(create_request(config))
    await wait_status(agent, config.kernel_id, KS.KERNEL_STATUS_RUNNING)
    return config.kernel_id


def remove_images(refs: list[str]) -> None:
    for ref in refs:
        subprocess.run(["docker", "rmi", "-f", ref], capture_output=True, check=False)


async def test_commit_on_docker(kernel_image: str, short_tmp: Path) -> None:
    skip_unless_runtime("docker")
    project = f"test-{uuid.uuid4().hex[:8]}"
    ref = f"bai.local/customized/{project}/mine:v1"
    unreachable = f"127.0.0.1:9/{project}/mine:v1"
    try:
        async with real_agent("docker", short_tmp / "state") as agent:
            channel, stub = stub_for(agent)
            async with channel:
                with pytest.raises(grpc.aio.AioRpcError) as unknown:
                    await commit(stub, commit_request("no-such-kernel", ref))
                assert unknown.value.code() == grpc.StatusCode.NOT_FOUND
                assert reason_of(unknown.value) == "NOT_FOUND"

                kernel_id = await running_kernel(agent, kernel_image, {"SECRET_TOKEN": "hunter2"})
                await execute(agent, kernel_id, "open('/tmp/marker', 'w').write('kept')")
                for bad in ("", "bai.local/Upper/name:v1", "bai.local/x/y:-v", "x/y@sha256:00"):
                    with pytest.raises(grpc.aio.AioRpcError) as invalid:
                        await commit(stub, commit_request(kernel_id, bad))
                    assert invalid.value.code() == grpc.StatusCode.INVALID_ARGUMENT, bad
                    assert violated_fields(invalid.value) == ["target.canonical"]

                replies = await commit(
                    stub, commit_request(kernel_id, ref, labels={"ai.bai.note": "committed"})
                )
                pushed_to_nowhere = commit_request(kernel_id, unreachable, push=True)
                with pytest.raises(grpc.aio.AioRpcError) as refused:
                    await commit(stub, pushed_to_nowhere)
        assert [r.WhichOneof("payload") for r in replies] == ["progress", "result"]
        assert replies[0].progress.message.startswith("Committing")
        result = replies[-1].result
        assert result.image.canonical == ref and result.image.is_local
        assert result.image.digest.startswith("sha256:") and result.image.architecture
        assert result.size_bytes > 0 and not result.pushed
        async with aiodocker.Docker() as docker:
            image = await docker.images.inspect(ref)
            assert image["Id"] == result.image.digest
        config = image["Config"]
        assert config["Labels"]["ai.bai.note"] == "committed"
        assert config["Labels"][LABEL_KERNEL_ID] == ""
        assert "SECRET_TOKEN=" in config["Env"] and "BAI_KERNEL_ID=" in config["Env"]
        assert not [entry for entry in config["Env"] if kernel_id in entry or "hunter2" in entry]
        marker = await asyncio.to_thread(
            subprocess.run,
            ["docker", "run", "--rm", ref, "cat", "/tmp/marker"],
            capture_output=True,
            text=True,
            check=True,
        )
        assert marker.stdout == "kept"

        assert refused.value.code() == grpc.StatusCode.FAILED_PRECONDITION
        assert reason_of(refused.value) == "IMAGE_PULL_FAILED"
        assert "127.0.0.1:9" in error_metadata(refused.value)["detail"]
    finally:
        await asyncio.to_thread(remove_images, [ref, unreachable])


async def test_the_process_runtime_cannot_commit(kernel_image: str, short_tmp: Path) -> None:
    skip_unless_runtime("process")
    async with real_agent("process", short_tmp / "state") as agent:
        kernel_id = await running_kernel(agent, kernel_image, {})
        channel, stub = stub_for(agent)
        async with channel:
            with pytest.raises(grpc.aio.AioRpcError) as refused:
                await commit(stub, commit_request(kernel_id, "bai.local/customized/p/q:v1"))
    assert refused.value.code() == grpc.StatusCode.FAILED_PRECONDITION
    assert reason_of(refused.value) == "INVALID_STATE"
    assert error_metadata(refused.value) == {
        "detail": "runtime-cannot-commit",
        "runtime": "process",
    }
    assert "nothing to commit" in (refused.value.details() or "")
