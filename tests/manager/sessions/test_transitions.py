"""transitions.py against the real database: history, derived session status,
slots given back once, batch results, and the event feed after commit."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime, timedelta

import grpc
from sqlalchemy import select

from bai.api.common.v1 import session_pb2 as common_session_pb2
from bai.api.manager.v1 import session_pb2
from bai.common.slots import Slots
from bai.manager.db.compute import KernelRow, SessionRow
from bai.manager.sessions import events
from bai.manager.sessions.transitions import (
    PendingEvents,
    publish_all,
    release_agent_slots,
    set_kernel_status,
    set_session_result,
    set_session_status,
)
from tests.manager.agents.fake_agent import (
    RegistryClient,
    agent_row,
    place_session,
    registration,
)
from tests.manager.fixtures import ManagerHandle, unique

NOW = datetime.now(UTC)


async def an_agent(channel: grpc.aio.Channel) -> str:
    agent_id = unique("i")
    client = RegistryClient(channel)
    await client.register(registration(agent_id))
    await client.close()
    return agent_id


async def apply(
    manager: ManagerHandle, session_id: uuid.UUID, changes: list[tuple[int, str, str]]
) -> PendingEvents:
    """Apply (kernel index, status, reason) changes in one transaction, as callers do."""
    pending = PendingEvents()
    async with manager.ctx.sessions() as db, db.begin():
        session = await db.get(SessionRow, session_id, with_for_update=True)
        assert session is not None
        kernels = list(
            (
                await db.execute(
                    select(KernelRow)
                    .where(KernelRow.session_id == session_id)
                    .order_by(KernelRow.cluster_idx)
                    .with_for_update()
                )
            ).scalars()
        )
        for index, status, reason in changes:
            pending.extend(
                await set_kernel_status(
                    db, session, kernels[index], status, NOW, reason=reason, siblings=kernels
                )
            )
    return pending


async def rows(manager: ManagerHandle, session_id: uuid.UUID) -> tuple[SessionRow, list[KernelRow]]:
    async with manager.ctx.sessions() as db:
        session = await db.get(SessionRow, session_id)
        kernels = (
            await db.execute(
                select(KernelRow)
                .where(KernelRow.session_id == session_id)
                .order_by(KernelRow.cluster_idx)
            )
        ).scalars()
        assert session is not None
        return session, list(kernels)


def event_types(pending: PendingEvents) -> list[int]:
    return [event.type for event, _scope in pending.items]


async def test_kernels_drive_the_session_and_duplicates_do_nothing(
    manager: ManagerHandle, channel: grpc.aio.Channel
) -> None:
    agent_id = await an_agent(channel)
    placed = await place_session(manager, agent_id, ["PREPARING", "PREPARING"])
    first = await apply(manager, placed.session_id, [(0, "RUNNING", "")])
    session, kernels = await rows(manager, placed.session_id)
    assert session.status == "PREPARING" and session.started_at is None
    assert kernels[0].started_at is not None
    assert event_types(first) == [session_pb2.SESSION_EVENT_TYPE_KERNEL_STARTED]

    second = await apply(manager, placed.session_id, [(1, "RUNNING", "")])
    assert event_types(second) == [
        session_pb2.SESSION_EVENT_TYPE_KERNEL_STARTED,
        session_pb2.SESSION_EVENT_TYPE_SESSION_STARTED,
    ]
    session, kernels = await rows(manager, placed.session_id)
    assert session.status == "RUNNING" and session.started_at is not None
    assert [h["status"] for h in session.status_history][-1] == "RUNNING"

    late = await apply(manager, placed.session_id, [(1, "CREATING", ""), (1, "RUNNING", "")])
    assert late.items == []
    _session, kernels = await rows(manager, placed.session_id)
    assert [h["status"] for h in kernels[1].status_history] == ["RUNNING"]


async def test_terminal_kernels_give_slots_back_once(
    manager: ManagerHandle, channel: grpc.aio.Channel
) -> None:
    agent_id = await an_agent(channel)
    placed = await place_session(manager, agent_id, ["RUNNING", "RUNNING"])
    assert (await agent_row(manager, agent_id)).occupied_slots == {
        "cpu": "2",
        "mem": "2147483648",
    }
    revision = (await agent_row(manager, agent_id)).revision
    await apply(manager, placed.session_id, [(0, "TERMINATED", "self-terminated")])
    session, _ = await rows(manager, placed.session_id)
    assert session.status == "RUNNING_DEGRADED"
    agent = await agent_row(manager, agent_id)
    assert agent.occupied_slots == {"cpu": "1", "mem": "1073741824"}
    assert agent.revision == revision + 1

    # Terminal is final: a second terminal change releases nothing more.
    again = await apply(manager, placed.session_id, [(0, "ERROR", "")])
    assert again.items == []
    assert (await agent_row(manager, agent_id)).occupied_slots["cpu"] == "1"

    last = await apply(manager, placed.session_id, [(1, "TERMINATED", "user-requested")])
    assert session_pb2.SESSION_EVENT_TYPE_SESSION_TERMINATED in event_types(last)
    session, _ = await rows(manager, placed.session_id)
    assert session.status == "TERMINATED" and session.terminated_at is not None
    assert session.status_reason == "user-requested"
    assert not Slots.from_wire((await agent_row(manager, agent_id)).occupied_slots).nonzero()


async def test_a_terminating_session_waits_for_all_its_kernels(
    manager: ManagerHandle, channel: grpc.aio.Channel
) -> None:
    agent_id = await an_agent(channel)
    placed = await place_session(manager, agent_id, ["RUNNING", "RUNNING"])
    async with manager.ctx.sessions() as db, db.begin():
        session = await db.get(SessionRow, placed.session_id)
        assert session is not None
        set_session_status(session, "TERMINATING", NOW, reason="user-requested")
    await apply(manager, placed.session_id, [(0, "TERMINATED", "user-requested")])
    session, _ = await rows(manager, placed.session_id)
    assert session.status == "TERMINATING"
    await apply(manager, placed.session_id, [(1, "TERMINATED", "user-requested")])
    session, _ = await rows(manager, placed.session_id)
    assert session.status == "TERMINATED"


async def test_session_status_and_result_are_set_once(
    manager: ManagerHandle, channel: grpc.aio.Channel
) -> None:
    agent_id = await an_agent(channel)
    placed = await place_session(manager, agent_id, ["RUNNING"])
    async with manager.ctx.sessions() as db, db.begin():
        session = await db.get(SessionRow, placed.session_id)
        assert session is not None
        assert set_session_status(session, "RUNNING", NOW).items == []
        first = set_session_result(session, "success", 0, NOW, "task-finished")
        assert [e.type for e, _ in first.items] == [session_pb2.SESSION_EVENT_TYPE_SESSION_SUCCESS]
        assert set_session_result(session, "failure", 1, NOW, "task-failed").items == []
        ended = set_session_status(session, "TERMINATED", NOW + timedelta(seconds=1))
        assert len(ended.items) == 1
        assert set_session_status(session, "RUNNING", NOW).items == []
    session, _ = await rows(manager, placed.session_id)
    assert (session.result, session.exit_code, session.status) == ("success", 0, "TERMINATED")


async def test_release_never_goes_negative(
    manager: ManagerHandle, channel: grpc.aio.Channel
) -> None:
    agent_id = await an_agent(channel)
    await place_session(manager, agent_id, ["RUNNING"])
    async with manager.ctx.sessions() as db, db.begin():
        await release_agent_slots(db, agent_id, Slots.from_wire({"cpu": "5", "mem": "1"}))
        await release_agent_slots(db, None, Slots.from_wire({"cpu": "1"}))
    occupied = (await agent_row(manager, agent_id)).occupied_slots
    assert "cpu" not in occupied and occupied["mem"] == "1073741823"


async def test_events_are_published_to_the_feed_with_their_scope(
    manager: ManagerHandle, channel: grpc.aio.Channel
) -> None:
    agent_id = await an_agent(channel)
    placed = await place_session(manager, agent_id, ["PREPARING"])
    redis = manager.ctx.redis
    cursor = await events.latest_cursor(redis)
    pending = await apply(manager, placed.session_id, [(0, "RUNNING", "")])
    await publish_all(redis, pending)
    stored = [
        e
        for e in await events.read_after(redis, cursor, block=None)
        if e.scope.session_id == str(placed.session_id)
    ]
    assert [e.event.type for e in stored] == event_types(pending)
    assert stored[0].event.kernel_id == str(placed.kernel_ids[0])
    assert stored[0].scope.access_key == manager.admin_access_key
    assert stored[-1].event.session_status == common_session_pb2.SESSION_STATUS_RUNNING


async def test_a_long_wait_on_a_quiet_feed_ends_empty_instead_of_timing_out(
    manager: ManagerHandle,
) -> None:
    # The manager's Redis client gives up on a read after 5 s (redis-py's
    # default socket timeout); a WatchEvents waiting for its 15 s keepalive must
    # not turn that into DEPENDENCY_UNAVAILABLE.
    redis = manager.ctx.redis
    after_everything = f"{2**63 - 2}-0"
    assert await events.read_after(redis, after_everything, block=timedelta(seconds=8)) == []
