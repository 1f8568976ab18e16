"""How the runner starts: on a python that is too old it hands over to the fallback
interpreter named on its command line (one interpreter start, no version probe), or
says why it cannot run. Host pythons from pyenv stand in for a kernel image's."""

from __future__ import annotations

import asyncio
import os
from pathlib import Path

import pytest

from bai.agent.runner.client import RunnerClient, RunSpec
from bai.agent.runner.layout import ENV_RUN_DIR, ENV_WORK_DIR, SOCKET_FILE, runner_package_dir
from tests.agent.runtime.runner_helpers import run

READY_TIMEOUT = 30.0
PYENV = Path("/root/.pyenv/versions")
PYTHON36 = PYENV / "3.6.15/bin/python3.6"
PYTHON39 = PYENV / "3.9.18/bin/python3.9"
SCRIPT = runner_package_dir() / "kernel_runner.py"


def runner_environ(run_dir: Path) -> dict[str, str]:
    (run_dir / "work").mkdir(exist_ok=True)
    return {**os.environ, ENV_RUN_DIR: str(run_dir), ENV_WORK_DIR: str(run_dir / "work")}


@pytest.mark.skipif(not PYTHON36.exists(), reason=f"no python 3.6 at {PYTHON36}")
@pytest.mark.skipif(not PYTHON39.exists(), reason=f"no python 3.9 at {PYTHON39}")
async def test_a_too_old_python_hands_over_to_the_fallback(short_tmp: Path) -> None:
    process = await asyncio.create_subprocess_exec(
        str(PYTHON36), str(SCRIPT), str(PYTHON39), env=runner_environ(short_tmp)
    )
    try:
        client = RunnerClient(short_tmp / SOCKET_FILE)
        await client.wait_ready(READY_TIMEOUT)
        query = await run(client, RunSpec("query", "import sys\nsys.version_info[:2]"))
        assert query.text("stdout") == "(3, 9)\n"
    finally:
        process.kill()
        await process.wait()


@pytest.mark.skipif(not PYTHON36.exists(), reason=f"no python 3.6 at {PYTHON36}")
@pytest.mark.parametrize("fallback", [[], ["/nonexistent/python"], [str(PYTHON36)]])
async def test_without_a_usable_fallback_a_too_old_python_exits_127(
    short_tmp: Path, fallback: list[str]
) -> None:
    process = await asyncio.create_subprocess_exec(
        str(PYTHON36),
        str(SCRIPT),
        *fallback,
        env=runner_environ(short_tmp),
        stderr=asyncio.subprocess.PIPE,
    )
    _, stderr = await process.communicate()
    assert process.returncode == 127
    assert b"no python >= 3.9" in stderr
    assert not (short_tmp / SOCKET_FILE).exists()
