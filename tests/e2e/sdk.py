"""The SDK against a manager with the admin keypair: sessions started and code run
through it."""

from __future__ import annotations

from typing import Any

from bai.api.common.v1 import execution_pb2
from bai.api.common.v1 import session_pb2 as common
from bai.api.manager.v1 import session_pb2
from bai.client import AsyncClient, KeypairCredentials, execute
from tests.e2e.agent_process import AgentProcess, MiB
from tests.e2e.containers import IMAGE
from tests.e2e.waits import DEADLINE
from tests.manager.fixtures import ManagerHandle, unique

SLOTS = {"cpu": "1", "mem": str(256 * MiB)}


def sdk(manager: ManagerHandle, address: str | None = None) -> AsyncClient:
    """An SDK client with the admin keypair; unary calls time out after DEADLINE."""
    credentials = KeypairCredentials(manager.admin_access_key, manager.admin_secret_key)
    return AsyncClient(address or manager.address, credentials, timeout=DEADLINE)


async def running_session(
    client: AsyncClient, agent: AgentProcess, image: str = IMAGE, **fields: Any
) -> session_pb2.Session:
    """A session of SLOTS on `agent`'s group, created and waited for until RUNNING."""
    reply = await client.sessions.create_session(
        name=unique("e2e"),
        image=image,
        scaling_group=agent.group,
        resource_slots=SLOTS,
        enqueue_only=False,
        timeout=DEADLINE,
        **fields,
    )
    assert reply.session.status == common.SESSION_STATUS_RUNNING, reply.session
    return reply.session


async def run_code(
    client: AsyncClient, session_id: str, code: str, *, mode: str = "query", stdin: str = ""
) -> tuple[list[tuple[int, bytes]], execution_pb2.ExecutionResult | None, int]:
    """Runs code; answers each stdin prompt with `stdin`. Returns the output chunks
    (stream, data), the result and how many prompts were answered."""
    chunks: list[tuple[int, bytes]] = []
    prompts = 0
    async with execute(client, session_id, code, mode=mode, timeout=DEADLINE) as run:
        async for response in run:
            kind = response.WhichOneof("payload")
            if kind == "output":
                chunks.append((response.output.stream, response.output.data))
            elif kind == "waiting_input":
                prompts += 1
                run.send_stdin(stdin)
        return chunks, run.result, prompts


def text(chunks: list[tuple[int, bytes]], stream: int | None = None) -> str:
    return b"".join(d for s, d in chunks if stream is None or s == stream).decode()
