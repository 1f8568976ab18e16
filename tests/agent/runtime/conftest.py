"""Docker fixtures: the real dockerd, the locally built kernel image (built once per
session, reused when up to date) and a DockerRuntime whose sandboxes are removed at
the end of the session."""

from __future__ import annotations

import os
import shutil
import tempfile
import uuid
from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import pytest

from bai.agent.images.build import build_image
from bai.agent.runtime.docker import DockerRuntime

DOCKER_SOCKET = Path("/var/run/docker.sock")


@pytest.fixture(scope="session")
def docker_socket() -> str:
    if not DOCKER_SOCKET.exists():
        pytest.skip("dockerd is not available: /var/run/docker.sock is absent")
    return f"unix://{DOCKER_SOCKET}"


@pytest.fixture(scope="session")
def kernel_image(docker_socket: str) -> str:
    if os.geteuid() != 0:
        pytest.skip("building the kernel image (debootstrap, /var/lib/bai) needs root")
    result = build_image()
    return result.ref


@pytest.fixture(scope="session")
def test_agent_id() -> str:
    return f"agent-test-{uuid.uuid4().hex[:8]}"


@pytest.fixture(scope="session")
async def docker_runtime(docker_socket: str, test_agent_id: str) -> AsyncIterator[DockerRuntime]:
    runtime = DockerRuntime(docker_socket)
    try:
        yield runtime
    finally:
        for state in await runtime.list_sandboxes(test_agent_id):
            await runtime.remove(state.sandbox_id)
        await runtime.close()


@pytest.fixture
def short_tmp() -> Iterator[Path]:
    """A temp dir with a short path: unix socket paths are limited to 107 bytes."""
    path = Path(tempfile.mkdtemp(prefix="bai-h1-", dir="/tmp"))
    yield path
    shutil.rmtree(path, ignore_errors=True)
