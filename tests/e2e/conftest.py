"""End-to-end fixtures: real agent processes with the Docker runtime, the real
manager (the shared one, or own in-process replicas with a modified config) and
the SDK against it.

Each agent gets its own scaling group, so that tests sharing the session-scoped
manager never see each other's capacity, and its containers are removed at the
end whatever happened.
"""

from __future__ import annotations

import os
import shutil
import subprocess
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator
from contextlib import asynccontextmanager
from typing import Any

import pytest

from bai.client import AsyncClient
from bai.manager.config import ManagerConfig
from tests.e2e.agent_process import AgentProcess, running_agent
from tests.e2e.containers import DOCKER_SOCKET, IMAGE
from tests.e2e.own_manager import OwnManager, own_manager_config
from tests.e2e.records import make_group
from tests.e2e.sdk import sdk
from tests.manager.fixtures import ManagerHandle


@pytest.fixture(scope="session")
def kernel_image() -> str:
    """The local Python kernel image (built when missing)."""
    if not DOCKER_SOCKET.exists():
        pytest.skip("dockerd is not available: /var/run/docker.sock is absent")
    if shutil.which("docker") is None:
        pytest.skip("the docker CLI is not installed (needed to inspect containers)")
    probe = subprocess.run(["docker", "image", "inspect", IMAGE], capture_output=True)
    if probe.returncode != 0:
        if os.geteuid() != 0:
            pytest.skip(f"{IMAGE} is absent and building it (debootstrap) needs root")
        from bai.agent.images.build import build_image

        build_image()
    return IMAGE


@pytest.fixture
async def own_managers(
    manager: ManagerHandle, stack: Any
) -> AsyncIterator[Callable[..., Awaitable[OwnManager]]]:
    """Start in-process manager replicas (after the shared `manager` migrated and
    bootstrapped the database); all are stopped at the end."""
    started: list[OwnManager] = []

    async def start(config: ManagerConfig | None = None, **kw: Any) -> OwnManager:
        own = OwnManager(config or own_manager_config(stack, **kw))
        await own.start()
        started.append(own)
        return own

    try:
        yield start
    finally:
        for own in reversed(started):
            await own.stop()


@pytest.fixture
def agent_factory(kernel_image: str, manager: ManagerHandle) -> Iterator[Callable[[str], Any]]:
    """`async with agent_factory(manager_addr) as agent:` an agent in a fresh group,
    registered with the manager at manager_addr (the same database as `manager`)."""

    @asynccontextmanager
    async def make(manager_addr: str) -> AsyncIterator[AgentProcess]:
        group = await make_group(manager)
        async with running_agent(manager, manager_addr, group) as agent:
            yield agent

    yield make


@pytest.fixture
async def agent(
    agent_factory: Callable[[str], Any], manager: ManagerHandle
) -> AsyncIterator[AgentProcess]:
    """A real agent registered with the shared manager, in its own scaling group."""
    async with agent_factory(manager.address) as running:
        yield running


@pytest.fixture
async def client(manager: ManagerHandle) -> AsyncIterator[AsyncClient]:
    async with sdk(manager) as c:
        yield c
