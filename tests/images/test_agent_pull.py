"""The agent's CheckAndPullImage with the real DockerRuntime and the mini registry:
progress then PULLED, then ALREADY_PRESENT; policy NONE; wrong credentials; the
image events on the registry stream (read from the agent's outbox)."""

from __future__ import annotations

import os
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import grpc
import pytest

from bai.agent.main import RunningAgent, start_agent
from bai.agent.runtime.docker import DockerRuntime
from bai.api.agent.v1 import agent_pb2
from bai.api.common.v1 import image_pb2
from bai.api.manager.v1 import agent_registry_pb2 as reg
from tests.agent.core.helpers import agent_config, plugins, stub_for
from tests.images.conftest import PASSWORD, TEST_LABEL, USERNAME, Registries
from tests.rpc_errors import reason_of

IP = image_pb2.ImagePullPolicy


@pytest.fixture
async def agent(tmp_path_factory: pytest.TempPathFactory) -> AsyncIterator[RunningAgent]:
    # Unix socket paths are short: a short base directory.
    state_dir = Path(tmp_path_factory.mktemp("ip", numbered=True))
    runtime = DockerRuntime()
    config = agent_config(state_dir, agent_id=f"agent-pull-{os.getpid()}")
    running = await start_agent(config, runtime=runtime, plugins=plugins())
    try:
        yield running
    finally:
        await running.stop()
        await runtime.close()


async def check_and_pull(
    agent: RunningAgent, ref: image_pb2.ImageRef, policy: int
) -> list[agent_pb2.CheckAndPullImageResponse]:
    channel, stub = stub_for(agent)
    async with channel:
        request = agent_pb2.CheckAndPullImageRequest(image=ref, pull_policy=policy)  # type: ignore[arg-type]
        return [reply async for reply in stub.CheckAndPullImage(request)]


def image_events(agent: RunningAgent, canonical: str) -> list[reg.ImageEvent]:
    return [
        e.image_event
        for e in agent.ctx.outbox.unacked()
        if e.WhichOneof("payload") == "image_event" and e.image_event.image.canonical == canonical
    ]


def event_names(events: list[reg.ImageEvent]) -> list[str]:
    return [reg.ImageEventType.Name(e.type).removeprefix("IMAGE_EVENT_TYPE_") for e in events]


def ref_of(canonical: str, **fields: Any) -> image_pb2.ImageRef:
    return image_pb2.ImageRef(canonical=canonical, architecture="x86_64", **fields)


async def test_pulls_with_progress_then_finds_it_present(
    registries: Registries, agent: RunningAgent
) -> None:
    registry = registries.locked
    canonical = registry.reference("r2/agent:1")
    ref = ref_of(
        canonical,
        registry=image_pb2.RegistryRef(
            name=registry.host, url=registry.url, username=USERNAME, password=PASSWORD
        ),
    )
    replies = await check_and_pull(agent, ref, IP.IMAGE_PULL_POLICY_DIGEST)
    kinds = [r.WhichOneof("payload") for r in replies]
    assert kinds[-1] == "result" and set(kinds[:-1]) == {"progress"} and len(kinds) > 1
    assert any(r.progress.message for r in replies[:-1])
    result = replies[-1].result
    assert result.outcome == agent_pb2.PULL_OUTCOME_PULLED
    assert result.digest.startswith("sha256:")

    events = image_events(agent, canonical)
    names = event_names(events)
    assert names[0] == "PULL_STARTED" and names[-1] == "PULL_FINISHED"
    assert set(names[1:-1]) <= {"PULL_PROGRESS"}
    assert all(not e.image.registry.password for e in events), "credentials leaked"
    listed = await agent.km.images.installed()
    installed = {i.image.canonical: i for i in listed}
    assert installed[canonical].labels[TEST_LABEL] == registries.label_value

    # Same digest: nothing to pull, whatever the registry says now.
    again = await check_and_pull(
        agent, ref_of(canonical, digest=result.digest), IP.IMAGE_PULL_POLICY_DIGEST
    )
    assert [r.WhichOneof("payload") for r in again] == ["result"]
    assert again[0].result.outcome == agent_pb2.PULL_OUTCOME_ALREADY_PRESENT
    # TAG: a present name is enough even when the expected digest differs.
    by_tag = await check_and_pull(
        agent, ref_of(canonical, digest="sha256:" + "0" * 64), IP.IMAGE_PULL_POLICY_TAG
    )
    assert by_tag[-1].result.outcome == agent_pb2.PULL_OUTCOME_ALREADY_PRESENT
    assert event_names(image_events(agent, canonical)) == names
    # ALWAYS (PullImage with force): pulled again although the digest matches.
    forced_ref = image_pb2.ImageRef()
    forced_ref.CopyFrom(ref)
    forced_ref.digest = result.digest
    forced = await check_and_pull(agent, forced_ref, IP.IMAGE_PULL_POLICY_ALWAYS)
    assert forced[-1].result.outcome == agent_pb2.PULL_OUTCOME_PULLED


async def test_policy_none_never_pulls(registries: Registries, agent: RunningAgent) -> None:
    canonical = registries.open.reference("r2/none:1")
    with pytest.raises(grpc.aio.AioRpcError) as caught:
        await check_and_pull(agent, ref_of(canonical), IP.IMAGE_PULL_POLICY_NONE)
    assert caught.value.code() == grpc.StatusCode.NOT_FOUND
    assert reason_of(caught.value) == "IMAGE_NOT_FOUND"
    assert image_events(agent, canonical) == []
    assert await agent.ctx.runtime.inspect_image(canonical) is None


async def test_wrong_credentials_fail_the_pull(registries: Registries, agent: RunningAgent) -> None:
    registry = registries.locked
    canonical = registry.reference("r2/none:1")
    ref = ref_of(
        canonical,
        registry=image_pb2.RegistryRef(name=registry.host, username=USERNAME, password="wrong"),
    )
    with pytest.raises(grpc.aio.AioRpcError) as caught:
        await check_and_pull(agent, ref, IP.IMAGE_PULL_POLICY_DIGEST)
    assert caught.value.code() == grpc.StatusCode.FAILED_PRECONDITION
    assert reason_of(caught.value) == "IMAGE_PULL_FAILED"
    failed = image_events(agent, canonical)
    assert event_names(failed) == ["PULL_STARTED", "PULL_FAILED"]
    assert failed[-1].message


async def test_an_image_the_registry_lacks_is_not_found(
    registries: Registries, agent: RunningAgent
) -> None:
    canonical = registries.open.reference("r2/missing:1")
    with pytest.raises(grpc.aio.AioRpcError) as caught:
        await check_and_pull(agent, ref_of(canonical), IP.IMAGE_PULL_POLICY_DIGEST)
    assert caught.value.code() == grpc.StatusCode.NOT_FOUND
    assert reason_of(caught.value) == "IMAGE_NOT_FOUND"
    assert event_names(image_events(agent, canonical)) == ["PULL_STARTED", "PULL_FAILED"]
