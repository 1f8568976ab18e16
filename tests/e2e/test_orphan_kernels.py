"""A kernel that reaches its agent after the manager ended it.

The race, seen in test_replicas_capacity.py runs: a session destroyed while its
CreateKernels is on the way (dispatch loaded it as SCHEDULED and is sending)
gets DestroyKernel answered found=false, so control.send_destroy ends the kernel
CANCELLED; then CreateKernels arrives and the agent starts the container. Here
the late CreateKernels is sent directly, so the outcome does not depend on timing.
"""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable
from typing import Any

import pytest
from sqlalchemy import update

from bai.api.common.v1 import image_pb2
from bai.manager.db.compute import KernelRow
from tests.agent.core.helpers import create_request, kernel_config
from tests.e2e.agent_process import MiB
from tests.e2e.containers import IMAGE, kernel_containers, wait_no_container
from tests.e2e.own_manager import OwnManager
from tests.e2e.records import kernel_rows, make_group, wait_session
from tests.e2e.sdk import sdk
from tests.e2e.waits import eventually
from tests.manager.fixtures import ManagerHandle, unique

pytestmark = pytest.mark.slow

SLOTS = {"cpu": "1", "mem": str(256 * MiB)}


async def test_a_kernel_created_after_it_was_cancelled_is_removed(
    manager: ManagerHandle,
    own_managers: Callable[..., Awaitable[OwnManager]],
    agent_factory: Callable[[str], Any],
    caplog: pytest.LogCaptureFixture,
) -> None:
    caplog.set_level(logging.WARNING, logger="bai.manager.agents.orphans")
    own = await own_managers()
    async with agent_factory(own.address) as agent, sdk(manager, own.address) as client:
        # A session that waits (its group has no agent), then is destroyed: CANCELLED.
        empty_group = await make_group(manager)
        reply = await client.sessions.create_session(
            name=unique("e2e"),
            image=IMAGE,
            scaling_group=empty_group,
            resource_slots=SLOTS,
            enqueue_only=True,
        )
        session_id = reply.session.id
        await client.sessions.destroy_session(session_id=session_id)
        await wait_session(manager, session_id, {"CANCELLED"})
        (kernel,) = await kernel_rows(manager, session_id)
        # As if the scheduler had placed it on our agent before the cancel.
        async with manager.ctx.sessions() as db, db.begin():
            await db.execute(
                update(KernelRow).where(KernelRow.id == kernel.id).values(agent_id=agent.agent_id)
            )

        # The late CreateKernels of the dispatch that loaded it before the cancel.
        config = kernel_config(slots=SLOTS, image=IMAGE)
        config.image.CopyFrom(image_pb2.ImageRef(canonical=IMAGE, architecture="x86_64"))
        config.kernel_id, config.session_id = str(kernel.id), session_id
        result = await own.ctx.agent_pool.call(  # type: ignore[union-attr]
            agent.agent_id, "CreateKernels", create_request(config)
        )
        assert not result.results[0].HasField("error"), result

        # The agent starts it and reports it; the manager, which ended it, has it
        # destroyed. That can happen before a poll sees the container running, so
        # either sighting proves the start.
        def reaped() -> bool:
            return any(
                str(kernel.id) in r.getMessage() and "destroying it" in r.getMessage()
                for r in caplog.records
            )

        await eventually(
            lambda: reaped() or kernel_containers(str(kernel.id), running_only=True),
            "the agent starts the late kernel",
        )
        await wait_no_container(str(kernel.id), running_only=True, limit=15)
        await eventually(reaped, "the manager has the kernel it ended destroyed")
