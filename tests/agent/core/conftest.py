"""Fixtures: a short state dir (unix socket paths are limited to 107 bytes) and a
running agent with the fake runtime."""

from __future__ import annotations

import shutil
import tempfile
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import Any

import pytest

from bai.agent.main import RunningAgent
from tests.agent.core.fake_runtime import HostProcessRuntime
from tests.agent.core.helpers import launch, stub_for


@pytest.fixture
def state_dir() -> Iterator[Path]:
    path = Path(tempfile.mkdtemp(prefix="bai-", dir="/tmp"))
    yield path
    shutil.rmtree(path, ignore_errors=True)


@pytest.fixture
async def agent_and_runtime(
    state_dir: Path,
) -> AsyncIterator[tuple[RunningAgent, HostProcessRuntime]]:
    agent, runtime = await launch(state_dir)
    try:
        yield agent, runtime
    finally:
        await agent.stop()
        await runtime.kill_all()


@pytest.fixture
def agent(agent_and_runtime: tuple[RunningAgent, HostProcessRuntime]) -> RunningAgent:
    return agent_and_runtime[0]


@pytest.fixture
def runtime(agent_and_runtime: tuple[RunningAgent, HostProcessRuntime]) -> HostProcessRuntime:
    return agent_and_runtime[1]


@pytest.fixture
async def stub(agent: RunningAgent) -> AsyncIterator[Any]:
    channel, client = stub_for(agent)
    async with channel:
        yield client
