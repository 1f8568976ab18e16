"""`bai session commit` on a real agent and dockerd: a file written in a running
session is in the committed image, a new session starts from that image and
reads it, and the first session's environment did not become the image's."""

from __future__ import annotations

import asyncio
import subprocess
from pathlib import Path

from bai.client import AsyncClient
from tests.e2e.agent_process import AgentProcess
from tests.e2e.records import wait_session
from tests.e2e.sdk import run_code, running_session, text
from tests.e2e.test_cli import bai
from tests.e2e.waits import DEADLINE
from tests.manager.fixtures import ManagerHandle, unique


async def test_a_committed_session_starts_again_from_its_image(
    manager: ManagerHandle, agent: AgentProcess, client: AsyncClient, tmp_path: Path
) -> None:
    source = str((await running_session(client, agent, environ={"MY_TOKEN": "s3cret"})).id)
    await run_code(client, source, "open('/tmp/marker', 'w').write('kept')")

    name = unique("env").lower().replace("_", "-")
    code, out, err = await bai(manager, tmp_path, "session", "commit", source, name, "--tag", "t1")
    assert code == 0, err
    assert "committing" in err
    image = out.strip().rsplit(" as ", 1)[-1]
    assert image.startswith("bai.local/customized/") and image.endswith(f"/{name}:t1"), out
    started = [source]
    try:
        listed = await client.images.list_images(customized_only=True)
        assert image in [i.canonical for i in listed.images]

        again = str((await running_session(client, agent, image)).id)
        started.append(again)
        chunks, _, _ = await run_code(
            client,
            again,
            "import os\nprint(open('/tmp/marker').read(), repr(os.environ.get('MY_TOKEN')))",
        )
        assert text(chunks) == "kept ''\n", chunks
    finally:
        # Containers first: an image still in use would only lose its tag and stay behind.
        for session_id in started:
            await client.sessions.destroy_session(session_id=session_id, forced=True)
            await wait_session(manager, session_id, {"TERMINATED"}, DEADLINE)
        remove = ["docker", "rmi", "-f", image]
        await asyncio.to_thread(subprocess.run, remove, capture_output=True, timeout=120)
