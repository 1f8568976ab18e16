"""Scaling groups, callers, requests and waits for session tests.

Each test gets its own scaling group (associated with the default domain) and
its own fake agents, so that tests sharing the session-scoped manager never
see each other's capacity.
"""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import AsyncIterator, Iterable
from contextlib import asynccontextmanager
from typing import Any

import grpc
from sqlalchemy import select

from bai.api.common.v1 import types_pb2
from bai.api.manager.v1 import session_pb2 as pb
from bai.api.manager.v1 import session_pb2_grpc as pb_grpc
from bai.manager.agents.images import ReportedImage, upsert_reported
from bai.manager.db.compute import AgentRow, KernelRow, SessionRow
from bai.manager.db.identity import DomainRow, ProjectRow
from bai.manager.db.policies import ScalingGroupForDomainRow, ScalingGroupRow
from bai.manager.sessions import names
from tests.manager.callers import Caller, invoke, make_caller
from tests.manager.fixtures import ManagerHandle, unique
from tests.manager.sessions.fake_agent import IMAGE, IMAGE_LABELS, FakeAgent

GiB = 1 << 30
SMALL = {"cpu": "1", "mem": str(GiB)}


async def make_group(manager: ManagerHandle, **opts: Any) -> str:
    """A scaling group for the default domain; also makes sure the test image is known
    and its registry allowed in the default domain (users may run only those)."""
    name = unique("sg")
    registry = IMAGE.split("/", 1)[0]
    async with manager.ctx.sessions() as db, db.begin():
        await upsert_reported(db, [ReportedImage(IMAGE, "x86_64", labels=IMAGE_LABELS)])
        domain = await db.get(DomainRow, "default", with_for_update=True)
        assert domain is not None
        if registry not in domain.allowed_docker_registries:
            domain.allowed_docker_registries = [*domain.allowed_docker_registries, registry]
        db.add(
            ScalingGroupRow(
                name=name,
                scheduler="fifo",
                scheduler_opts={
                    "allowed_session_types": ["interactive", "batch"],
                    "agent_selection_strategy": "concentrated",
                    **opts,
                },
            )
        )
        await db.flush()
        db.add(ScalingGroupForDomainRow(scaling_group=name, domain_name="default"))
    return name


async def default_project(manager: ManagerHandle) -> uuid.UUID:
    async with manager.ctx.sessions() as db:
        project = await db.scalar(
            select(ProjectRow.id).where(
                ProjectRow.domain_name == "default", ProjectRow.name == "default"
            )
        )
    assert project is not None
    return project


async def member(manager: ManagerHandle, role: str = "user", **kw: Any) -> Caller:
    """A caller of `role` in the default domain and project."""
    return await make_caller(manager, role, projects=(await default_project(manager),), **kw)


def create_request(group: str, slots: dict[str, str] | None = None, **fields: Any) -> Any:
    fields.setdefault("enqueue_only", True)
    fields.setdefault("image", IMAGE)
    return pb.CreateSessionRequest(
        scaling_group=group,
        resource_slots=types_pb2.ResourceSlots(slots=SMALL if slots is None else slots),
        **fields,
    )


async def call(channel: grpc.aio.Channel, who: Caller, name: str, request: Any) -> Any:
    return await invoke(channel, pb_grpc.SessionServiceStub, who, name, request)


async def create(channel: grpc.aio.Channel, who: Caller, request: Any) -> pb.Session:
    reply = await call(channel, who, "CreateSession", request)
    return reply.session  # type: ignore[no-any-return]


async def status_of(manager: ManagerHandle, session_id: str) -> str:
    async with manager.ctx.sessions() as db:
        status = await db.scalar(
            select(SessionRow.status).where(SessionRow.id == uuid.UUID(session_id))
        )
    assert status is not None
    return status


async def wait_status(
    manager: ManagerHandle, session_id: str, wanted: Iterable[str], *, limit: float = 20
) -> str:
    """Poll until the session reaches one of `wanted`; fails after `limit` seconds
    (a bound against hanging, not a timing assertion)."""
    targets = set(wanted)
    loop = asyncio.get_running_loop()
    deadline = loop.time() + limit
    while True:
        status = await status_of(manager, session_id)
        if status in targets:
            return status
        assert loop.time() < deadline, f"session {session_id} stuck in {status}"
        await asyncio.sleep(0.05)


async def agent_occupied(manager: ManagerHandle, agent_id: str) -> dict[str, str]:
    async with manager.ctx.sessions() as db:
        row = await db.get(AgentRow, agent_id)
    assert row is not None
    return {k: v for k, v in row.occupied_slots.items() if v != "0"}


async def kernels_of(manager: ManagerHandle, session_id: str) -> list[KernelRow]:
    async with manager.ctx.sessions() as db:
        rows = await db.execute(
            select(KernelRow).where(KernelRow.session_id == uuid.UUID(session_id))
        )
        return list(rows.scalars())


async def session_count(manager: ManagerHandle, group: str) -> int:
    async with manager.ctx.sessions() as db:
        rows = await db.execute(select(SessionRow.id).where(SessionRow.scaling_group == group))
        return len(list(rows.scalars()))


def status_name(value: int) -> str:
    return names.session_status_name(value)


@asynccontextmanager
async def agents(
    channel: grpc.aio.Channel, group: str, *slot_maps: dict[str, str]
) -> AsyncIterator[list[FakeAgent]]:
    started = [await FakeAgent.start(channel, group, slots) for slots in slot_maps]
    try:
        yield started
    finally:
        for agent in started:
            await agent.close()
