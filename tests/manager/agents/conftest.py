"""Fixtures of the agent tests against the real manager."""

from __future__ import annotations

from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import pytest

from bai.agent.main import RunningAgent
from tests.agent.core.fake_runtime import HostProcessRuntime
from tests.agent.core.helpers import launch
from tests.manager.fixtures import ManagerHandle, unique


@pytest.fixture
def state_dir(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Path]:
    # Unix socket paths are short: a short base directory.
    yield Path(tmp_path_factory.mktemp("ra", numbered=True))


@pytest.fixture
async def real_agent(
    manager: ManagerHandle, state_dir: Path
) -> AsyncIterator[tuple[RunningAgent, HostProcessRuntime]]:
    agent, runtime = await launch(state_dir, manager_addr=manager.address, agent_id=unique("real"))
    agent.registry.backoff_min = 0.05
    try:
        yield agent, runtime
    finally:
        await agent.stop()
        await runtime.kill_all()
