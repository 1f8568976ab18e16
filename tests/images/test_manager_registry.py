"""The manager with a configured registry (the mini registry behind basic auth) and
a real agent on the Docker runtime: RescanImages fills the catalogue with labels,
PullImage makes the agent pull (the catalogue learns it from the agent's image
events), and a session on an image the agent lacks goes PULLING -> RUNNING."""

from __future__ import annotations

import asyncio
import subprocess
from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import grpc
import pytest

from bai.agent.main import RunningAgent, start_agent
from bai.agent.runtime.docker import DockerRuntime
from bai.api.common.v1 import session_pb2 as common
from bai.api.manager.v1 import image_pb2, image_pb2_grpc
from bai.api.manager.v1 import session_pb2 as pb
from bai.manager.config import RegistryConfig
from bai.manager.db.identity import DomainRow
from tests.agent.core.helpers import agent_config, eventually, plugins
from tests.images.conftest import (
    FRESH_REPOSITORY,
    KERNEL_REPOSITORIES,
    PASSWORD,
    TEST_LABEL,
    USERNAME,
    Registries,
)
from tests.manager.agents.fake_agent import agent_row
from tests.manager.callers import Caller, invoke, refused, superadmin
from tests.manager.fixtures import ManagerHandle, unique
from tests.manager.sessions.helpers import (
    call,
    create_request,
    make_group,
    member,
    wait_status,
)
from tests.rpc_errors import reason_of


@pytest.fixture
def registry_name(manager: ManagerHandle, registries: Registries) -> Iterator[str]:
    """The locked mini registry configured in the manager, under a name unlike its host."""
    name = unique("mini")
    configured = manager.ctx.config.registries
    configured[name] = RegistryConfig(
        url=registries.locked.url, username=USERNAME, password=PASSWORD, project="r2"
    )
    try:
        yield name
    finally:
        del configured[name]


async def images(channel: grpc.aio.Channel, who: Caller, name: str, request: object) -> object:
    return await invoke(channel, image_pb2_grpc.ImageServiceStub, who, name, request)


async def rescan(channel: grpc.aio.Channel, admin: Caller, registry: str) -> None:
    request = image_pb2.RescanImagesRequest(registry=registry)
    reply = await images(channel, admin, "RescanImages", request)
    assert isinstance(reply, image_pb2.RescanImagesResponse) and reply.task_id == ""


async def listed(channel: grpc.aio.Channel, admin: Caller, registry: str) -> list[image_pb2.Image]:
    request = image_pb2.ListImagesRequest(registry=registry, include_installed_agents=True)
    reply = await images(channel, admin, "ListImages", request)
    assert isinstance(reply, image_pb2.ListImagesResponse)
    return list(reply.images)


def _containers(agent_id: str) -> list[str]:
    done = subprocess.run(
        ["docker", "ps", "-aq", "--filter", f"label=ai.bai.agent-id={agent_id}"],
        capture_output=True,
        text=True,
        check=False,
    )
    return done.stdout.split()


@pytest.fixture
async def agent(
    manager: ManagerHandle, registries: Registries, tmp_path_factory: pytest.TempPathFactory
) -> AsyncIterator[RunningAgent]:
    """A real agent on dockerd, registered with the manager in a group of its own."""
    group = await make_group(manager)
    state_dir = Path(tmp_path_factory.mktemp("mr", numbered=True))
    agent_id = unique("docker-pull")
    config = agent_config(
        state_dir, agent_id=agent_id, manager_addr=manager.address, scaling_group=group
    )
    runtime = DockerRuntime()
    running = await start_agent(config, runtime=runtime, plugins=plugins())
    running.registry.backoff_min = 0.05
    try:

        async def alive() -> bool:
            try:
                return (await agent_row(manager, agent_id)).status == "ALIVE"
            except AssertionError:  # not registered yet
                return False

        await eventually(alive, "the agent is ALIVE in the manager")
        yield running
    finally:
        await running.stop()
        await runtime.close()
        for container in await asyncio.to_thread(_containers, agent_id):
            await asyncio.to_thread(
                subprocess.run, ["docker", "rm", "-f", container], capture_output=True, check=False
            )


async def test_rescan_lists_the_registry_images_with_their_labels(
    manager: ManagerHandle, channel: grpc.aio.Channel, registries: Registries, registry_name: str
) -> None:
    admin = await superadmin(manager)
    await rescan(channel, admin, registry_name)
    found = {image.canonical: image for image in await listed(channel, admin, registry_name)}
    host = registries.locked.host
    assert set(found) == {f"{host}/{name}" for name in (*KERNEL_REPOSITORIES, FRESH_REPOSITORY)}
    config_digests = {d for d, blob in registries.store.blobs.items() if blob.path is None}
    for image in (found[f"{host}/{name}"] for name in KERNEL_REPOSITORIES):
        assert image.labels[TEST_LABEL] == registries.label_value
        assert image.digest in config_digests
        assert (image.architecture, image.is_local, image.registry) == (
            "x86_64",
            False,
            registry_name,
        )
        assert image.size_bytes > 4 << 20
        assert image.resource_limits, "labels give the resource minimums"
    # Rescanning an unchanged registry changes nothing.
    await rescan(channel, admin, registry_name)
    again = {i.canonical: i.digest for i in await listed(channel, admin, registry_name)}
    assert again == {c: i.digest for c, i in found.items()}


async def test_rescan_refuses_unknown_registries_wrong_credentials_and_non_admins(
    manager: ManagerHandle, channel: grpc.aio.Channel, registry_name: str
) -> None:
    admin = await superadmin(manager)
    error = await refused(rescan(channel, admin, unique("nowhere")))
    assert reason_of(error) == "REFERENCE_NOT_FOUND"
    manager.ctx.config.registries[registry_name].password = "wrong"
    error = await refused(rescan(channel, admin, registry_name))
    assert error.code() == grpc.StatusCode.FAILED_PRECONDITION
    user = await member(manager)
    error = await refused(rescan(channel, user, registry_name))
    assert error.code() == grpc.StatusCode.PERMISSION_DENIED


async def test_pull_image_makes_the_agent_pull_and_the_catalogue_learns_it(
    manager: ManagerHandle,
    channel: grpc.aio.Channel,
    registries: Registries,
    registry_name: str,
    agent: RunningAgent,
) -> None:
    admin = await superadmin(manager)
    await rescan(channel, admin, registry_name)
    canonical = registries.locked.reference("r2/manager:1")
    (image,) = [i for i in await listed(channel, admin, registry_name) if i.canonical == canonical]
    agent_id = agent.ctx.agent_id
    assert agent_id not in image.installed_agent_ids

    unknown = image_pb2.PullImageRequest(image_id=image.id, agent_ids=[unique("ghost")])
    error = await refused(images(channel, admin, "PullImage", unknown))
    assert reason_of(error) == "REFERENCE_NOT_FOUND"

    request = image_pb2.PullImageRequest(image_id=image.id, agent_ids=[agent_id])
    await images(channel, admin, "PullImage", request)

    async def installed() -> bool:
        now = [i for i in await listed(channel, admin, registry_name) if i.canonical == canonical]
        return agent_id in now[0].installed_agent_ids

    await eventually(installed, "the pulled image is installed on the agent", deadline=120)
    assert await agent.ctx.runtime.inspect_image(canonical) is not None
    # The pull event kept the labels the rescan found.
    (after,) = [i for i in await listed(channel, admin, registry_name) if i.canonical == canonical]
    assert after.labels[TEST_LABEL] == registries.label_value


async def allow_registry(manager: ManagerHandle, domain_name: str, registry: str) -> None:
    async with manager.ctx.sessions() as db, db.begin():
        domain = await db.get(DomainRow, domain_name, with_for_update=True)
        assert domain is not None
        domain.allowed_docker_registries = [*domain.allowed_docker_registries, registry]


async def test_a_session_on_an_image_the_agent_lacks_pulls_it_then_runs(
    manager: ManagerHandle,
    channel: grpc.aio.Channel,
    registries: Registries,
    registry_name: str,
    agent: RunningAgent,
) -> None:
    await rescan(channel, await superadmin(manager), registry_name)
    canonical = registries.locked.reference("r2/session:1")
    assert await agent.ctx.runtime.inspect_image(canonical) is None
    user = await member(manager)
    group = agent.ctx.config.scaling_group
    request = create_request(group, image=canonical, name=unique("pull"))
    # Users run images only from registries their domain allows.
    denied = await refused(call(channel, user, "CreateSession", request))
    assert reason_of(denied) == "REGISTRY_NOT_ALLOWED"
    await allow_registry(manager, "default", registry_name)
    session = (await call(channel, user, "CreateSession", request)).session
    await wait_status(manager, session.id, ["RUNNING", "CANCELLED", "ERROR"], limit=120)
    got = await call(channel, user, "GetSession", pb.GetSessionRequest(session_id=session.id))
    history = [h.status for h in got.session.status_history]
    assert got.session.status == common.SESSION_STATUS_RUNNING, got.session.status_message
    assert common.SESSION_STATUS_PULLING in history
    assert history.index(common.SESSION_STATUS_PULLING) < history.index(
        common.SESSION_STATUS_RUNNING
    )
    assert await agent.ctx.runtime.inspect_image(canonical) is not None
    destroy = pb.DestroySessionRequest(session_id=session.id)
    await call(channel, user, "DestroySession", destroy)
    await wait_status(manager, session.id, ["TERMINATED"], limit=60)
