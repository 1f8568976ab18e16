"""The installed `bai` command against the real manager and a real agent."""

from __future__ import annotations

import asyncio
import os
import sys
from pathlib import Path

from tests.e2e.agent_process import AgentProcess
from tests.e2e.containers import IMAGE
from tests.e2e.records import occupied
from tests.e2e.waits import DEADLINE, eventually
from tests.manager.fixtures import ManagerHandle

BAI = Path(sys.executable).with_name("bai")


async def bai(manager: ManagerHandle, config_dir: Path, *argv: str) -> tuple[int, str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("BAI_")}
    env |= {
        "BAI_ENDPOINT": manager.address,
        "BAI_ACCESS_KEY": manager.admin_access_key,
        "BAI_SECRET_KEY": manager.admin_secret_key,
        "BAI_CONFIG_DIR": str(config_dir),
    }
    proc = await asyncio.create_subprocess_exec(
        str(BAI),
        *argv,
        env=env,
        stdin=asyncio.subprocess.DEVNULL,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
    )
    try:
        out, err = await asyncio.wait_for(proc.communicate(), DEADLINE)
    except TimeoutError:
        proc.kill()
        raise AssertionError(f"bai {' '.join(argv)} did not finish") from None
    assert proc.returncode is not None
    return proc.returncode, out.decode(), err.decode()


async def test_bai_run_prints_the_result_and_cleans_up(
    manager: ManagerHandle, agent: AgentProcess, tmp_path: Path
) -> None:
    code, out, err = await bai(
        manager, tmp_path, "run", IMAGE, "print(6*7)", "--scaling-group", agent.group
    )
    assert (code, out) == (0, "42\n"), err
    assert "destroyed session" in err

    async def released() -> bool:
        return await occupied(manager, agent.agent_id) == {}

    await eventually(released, "the run's session gives its slots back")


async def test_bai_run_exits_with_the_program_s_code(
    manager: ManagerHandle, agent: AgentProcess, tmp_path: Path
) -> None:
    code, out, err = await bai(
        manager,
        tmp_path,
        "run",
        IMAGE,
        "echo to-stderr >&2; exit 5",
        "--mode",
        "batch",
        "--scaling-group",
        agent.group,
    )
    assert code == 5, (out, err)
    assert "to-stderr" in err
