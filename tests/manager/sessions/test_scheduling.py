"""The scheduling loop over the real database: diagnostics, cancellation, and
several schedulers racing over one agent."""

from __future__ import annotations

import asyncio
import uuid
from decimal import Decimal

import grpc
from sqlalchemy import select

from bai.api.common.v1 import session_pb2 as common
from bai.api.manager.v1 import session_pb2 as pb
from bai.common.slots import Slots, total
from bai.manager.agents.images import image_key
from bai.manager.db.compute import AgentRow, ImageRow, KernelRow, SessionRow
from bai.manager.sessions import lifecycle
from bai.manager.sessions.scheduling_loop import SchedulingLoop
from bai.manager.sessions.snapshot_builder import SchedulerDefaults
from tests.manager.callers import superadmin
from tests.manager.fixtures import ManagerHandle
from tests.manager.sessions.fake_agent import IMAGE_LABELS
from tests.manager.sessions.helpers import (
    GiB,
    agent_occupied,
    agents,
    call,
    create,
    create_request,
    kernels_of,
    make_group,
    member,
    status_of,
    wait_status,
)


async def _attempted(manager: ManagerHandle, session_id: str) -> pb.Session:
    """The session once the scheduler has looked at it at least once."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + 20
    while True:
        async with manager.ctx.sessions() as db:
            attempts = await db.scalar(
                select(SessionRow.scheduling_attempts).where(SessionRow.id == uuid.UUID(session_id))
            )
        if attempts:
            break
        assert loop.time() < deadline, "the scheduler never looked at the session"
        await asyncio.sleep(0.05)
    return await _get(manager, session_id)


async def _get(manager: ManagerHandle, session_id: str) -> pb.Session:
    async with manager.channel() as channel:
        admin = await superadmin(manager)
        reply = await call(
            channel, admin, "GetSession", pb.GetSessionRequest(session_id=session_id)
        )
    return reply.session  # type: ignore[no-any-return]


async def test_a_session_that_does_not_fit_waits_with_diagnostics(
    manager: ManagerHandle, channel: grpc.aio.Channel
) -> None:
    group = await make_group(manager)
    user = await member(manager)
    async with agents(channel, group, {"cpu": "2", "mem": str(8 * GiB)}) as (agent,):
        big = {"cpu": "2", "mem": str(GiB)}
        first = await create(channel, user, create_request(group, big, enqueue_only=False))
        assert first.status == common.SESSION_STATUS_RUNNING
        second = await create(channel, user, create_request(group, big))
        waiting = await _attempted(manager, second.id)
        assert waiting.status == common.SESSION_STATUS_PENDING
        (diagnostic,) = waiting.scheduling_diagnostics
        assert diagnostic.check == pb.SCHEDULING_CHECK_AGENT_RESOURCES
        assert [(s.slot, s.requested, s.available) for s in diagnostic.shortfalls] == [
            ("cpu", "2", "0")
        ]
        # Freeing the agent lets the waiting session run.
        await call(channel, user, "DestroySession", pb.DestroySessionRequest(session_id=first.id))
        await wait_status(manager, second.id, ["RUNNING"])
        assert (await _get(manager, second.id)).scheduling_diagnostics == []
        assert await agent_occupied(manager, agent.agent_id) == {"cpu": "2", "mem": str(GiB)}


async def test_destroying_a_pending_session_cancels_it_at_once(
    manager: ManagerHandle, channel: grpc.aio.Channel
) -> None:
    group = await make_group(manager)
    user = await member(manager)
    session = await create(channel, user, create_request(group))
    reply = await call(
        channel, user, "DestroySession", pb.DestroySessionRequest(session_id=session.id)
    )
    assert reply.session.status == common.SESSION_STATUS_CANCELLED
    assert reply.session.status_reason == common.LIFECYCLE_REASON_USER_REQUESTED
    assert [k.status for k in reply.session.kernels] == [common.KERNEL_STATUS_CANCELLED]
    again = await call(
        channel, user, "DestroySession", pb.DestroySessionRequest(session_id=session.id)
    )
    assert again.session.status == common.SESSION_STATUS_CANCELLED


async def test_racing_schedulers_never_over_allocate_an_agent(
    manager: ManagerHandle, channel: grpc.aio.Channel
) -> None:
    group = await make_group(manager)
    user = await member(manager)
    ctx = manager.ctx
    loops = [
        SchedulingLoop(ctx.sessions, ctx.redis, ctx.agent_pool, SchedulerDefaults())
        for _ in range(2)
    ]
    async with agents(channel, group, {"cpu": "10", "mem": str(64 * GiB)}) as (agent,):
        request = create_request(group, {"cpu": "1", "mem": str(GiB)})
        creates = [create(channel, user, request) for _ in range(50)]
        rounds = [asyncio.gather(*(loop.run_once() for loop in loops)) for _ in range(20)]
        created, *_ = await asyncio.gather(asyncio.gather(*creates), *rounds)
        assert len({s.id for s in created}) == 50
        ids = [uuid.UUID(s.id) for s in created]
        # Optimistic conflicts between the three schedulers (the manager runs its
        # own) only postpone placements: more rounds fill the agent, never overfill it.
        for _ in range(30):
            await asyncio.gather(*(loop.run_once() for loop in loops))
            async with ctx.sessions() as db:
                statuses = list(
                    (await db.execute(select(SessionRow.status).where(SessionRow.id.in_(ids))))
                    .scalars()
                    .all()
                )
            if sum(s in lifecycle.SESSION_ALLOCATED for s in statuses) >= 10:
                break
        async with ctx.sessions() as db:
            kernels = list(
                (
                    await db.execute(
                        select(KernelRow).where(
                            KernelRow.agent_id == agent.agent_id,
                            KernelRow.status.not_in(lifecycle.KERNEL_TERMINAL),
                        )
                    )
                ).scalars()
            )
        placed = [s for s in statuses if s in lifecycle.SESSION_ALLOCATED]
        assert len(placed) == 10
        assert statuses.count("PENDING") == 40
        occupied = Slots.from_wire(await agent_occupied(manager, agent.agent_id))
        assert occupied.get_amount("cpu") == Decimal(10)
        assert occupied == total(Slots.from_wire(k.occupied_slots) for k in kernels)


async def test_status_history_and_listing(
    manager: ManagerHandle, channel: grpc.aio.Channel
) -> None:
    group = await make_group(manager)
    user = await member(manager)
    async with agents(channel, group, {"cpu": "4", "mem": str(8 * GiB)}):
        session = await create(channel, user, create_request(group, enqueue_only=False))
        await wait_status(manager, session.id, ["RUNNING"])
        history = await call(
            channel, user, "GetStatusHistory", pb.GetStatusHistoryRequest(session_id=session.id)
        )
        assert history.session_history[0].status == common.SESSION_STATUS_PENDING
        (kernel,) = history.kernels
        assert [h.status for h in kernel.history][-1] == common.KERNEL_STATUS_RUNNING
        listed = await call(
            channel,
            user,
            "ListSessions",
            pb.ListSessionsRequest(scaling_group=group, statuses=[common.SESSION_STATUS_RUNNING]),
        )
        assert [s.id for s in listed.sessions] == [session.id]
        assert listed.sessions[0].kernels[0].status_history == []
        assert len(await kernels_of(manager, session.id)) == 1
        assert await status_of(manager, session.id) == "RUNNING"


async def test_an_image_no_registry_has_runs_only_where_it_is(
    manager: ManagerHandle, channel: grpc.aio.Channel
) -> None:
    """A built or committed image cannot be pulled: only agents holding it may take the
    session (the concentrating selector would pick the small agent otherwise)."""
    group = await make_group(manager)
    user = await member(manager)
    here, nowhere = (f"bai.local/test/{uuid.uuid4().hex[:8]}:1" for _ in range(2))
    small, large = {"cpu": "2", "mem": str(8 * GiB)}, {"cpu": "8", "mem": str(8 * GiB)}
    async with agents(channel, group, small, large) as (_small, holder):
        async with manager.ctx.sessions() as db, db.begin():
            for image in (here, nowhere):
                db.add(ImageRow(canonical=image, is_local=True, labels=IMAGE_LABELS))
            row = await db.get(AgentRow, holder.agent_id, with_for_update=True)
            assert row is not None
            row.images = [*row.images, image_key(here, "x86_64")]
        one_cpu = {"cpu": "1", "mem": str(GiB)}
        placed = await create(
            channel, user, create_request(group, one_cpu, image=here, enqueue_only=False)
        )
        assert placed.status == common.SESSION_STATUS_RUNNING
        assert [k.agent_id for k in await kernels_of(manager, placed.id)] == [holder.agent_id]

        waiting = await _attempted(
            manager, (await create(channel, user, create_request(group, one_cpu, image=nowhere))).id
        )
        assert waiting.status == common.SESSION_STATUS_PENDING
        (diagnostic,) = waiting.scheduling_diagnostics
        assert diagnostic.check == pb.SCHEDULING_CHECK_IMAGE_LOCATION
