"""A fake agent for manager tests, written against the contracts: a client of
AgentRegistryService.Connect (register, heartbeat, events, acks) plus helpers
that put sessions and kernels on it straight into the database."""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import AsyncIterator, Sequence
from dataclasses import dataclass, field
from typing import Any

import grpc
from sqlalchemy import select

from bai.api.agent.v1 import agent_pb2
from bai.api.common.v1 import image_pb2, node_pb2, session_pb2, types_pb2
from bai.api.manager.v1 import agent_registry_pb2 as reg
from bai.api.manager.v1 import agent_registry_pb2_grpc as reg_grpc
from bai.common.slots import Slots
from bai.manager.db.compute import AgentRow, KernelRow, SessionRow
from bai.manager.db.identity import KeypairRow, ProjectRow, UserRow
from tests.manager.fixtures import ManagerHandle, unique

SLOTS = {"cpu": "4", "mem": "8589934592"}
IMAGE = "cr.backend.ai/stable/python:3.12"


def registration(
    agent_id: str,
    *,
    boot_id: str | None = None,
    addr: str = "127.0.0.1:6011",
    scaling_group: str = "default",
    kernels: Sequence[agent_pb2.Kernel] = (),
    images: Sequence[str] = (IMAGE,),
) -> reg.AgentRegistration:
    return reg.AgentRegistration(
        agent_id=agent_id,
        boot_id=boot_id or uuid.uuid4().hex,
        addr=addr,
        public_host="127.0.0.1",
        scaling_group=scaling_group,
        architecture="x86_64",
        version="test",
        available_slots=types_pb2.ResourceSlots(slots=SLOTS),
        slot_types=[
            node_pb2.SlotTypeInfo(slot_name="cpu", type=node_pb2.SLOT_TYPE_COUNT),
            node_pb2.SlotTypeInfo(slot_name="mem", type=node_pb2.SLOT_TYPE_BYTES),
        ],
        hardware=node_pb2.HardwareInfo(
            hostname="node01",
            cpu_cores=4,
            compute_plugins=[
                node_pb2.ComputePluginInfo(
                    key="cpu", version="1", status=node_pb2.COMPUTE_PLUGIN_STATUS_HEALTHY
                )
            ],
        ),
        kernels=list(kernels),
        images=[
            agent_pb2.InstalledImage(
                image=image_pb2.ImageRef(
                    canonical=name, architecture="x86_64", digest="sha256:" + "ab" * 32
                ),
                size_bytes=1000,
                labels={"ai.backend.service-ports": "jupyter:http:8080"},
            )
            for name in images
        ],
    )


class RegistryClient:
    """One Connect stream, driven message by message by the test."""

    def __init__(self, channel: grpc.aio.Channel, token: str = "") -> None:
        self._outgoing: asyncio.Queue[reg.ConnectRequest | None] = asyncio.Queue()
        metadata = [("x-bai-internal-token", token)] if token else []
        self.call: Any = reg_grpc.AgentRegistryServiceStub(channel).Connect(
            self._requests(), metadata=metadata
        )

    async def _requests(self) -> AsyncIterator[reg.ConnectRequest]:
        while (request := await self._outgoing.get()) is not None:
            yield request

    async def send(self, request: reg.ConnectRequest) -> None:
        await self._outgoing.put(request)

    async def recv(self) -> reg.ConnectResponse:
        message = await self.call.read()
        assert message is not grpc.aio.EOF, "the manager ended the stream"
        return message  # type: ignore[no-any-return]

    async def register(self, registration: reg.AgentRegistration) -> reg.RegistrationAccepted:
        await self.send(reg.ConnectRequest(register=registration))
        answer = await self.recv()
        assert answer.WhichOneof("payload") == "registered"
        return answer.registered

    async def heartbeat(self, kernel_ids: Sequence[str] = ()) -> int:
        """Send a heartbeat; returns the seq of the ack the manager answers with."""
        await self.send(
            reg.ConnectRequest(
                heartbeat=reg.AgentHeartbeat(
                    available_slots=types_pb2.ResourceSlots(slots=SLOTS), kernel_ids=kernel_ids
                )
            )
        )
        return await self.ack()

    async def event(self, seq: int, **payload: Any) -> int:
        await self.send(reg.ConnectRequest(seq=seq, **payload))
        return await self.ack()

    async def ack(self) -> int:
        answer = await self.recv()
        assert answer.WhichOneof("payload") == "ack", answer
        return answer.ack.seq

    async def close(self) -> None:
        await self._outgoing.put(None)
        self.call.cancel()

    async def failure(self) -> grpc.aio.AioRpcError:
        """The status the stream ended with (it must end with an error)."""
        try:
            while True:
                if await self.call.read() is grpc.aio.EOF:
                    break
        except grpc.aio.AioRpcError as exc:
            return exc
        code = await self.call.code()
        raise AssertionError(f"the stream ended with {code}, not an error")


def kernel_event(kernel_id: uuid.UUID, kind: int, **fields: Any) -> reg.KernelEvent:
    return reg.KernelEvent(kernel_id=str(kernel_id), type=kind, **fields)  # type: ignore[arg-type]


def listed_kernel(kernel_id: uuid.UUID, status: int = session_pb2.KERNEL_STATUS_RUNNING) -> Any:
    return agent_pb2.Kernel(kernel_id=str(kernel_id), status=status)  # type: ignore[arg-type]


@dataclass
class PlacedSession:
    session_id: uuid.UUID
    kernel_ids: list[uuid.UUID] = field(default_factory=list)


async def place_session(
    manager: ManagerHandle,
    agent_id: str,
    statuses: Sequence[str] = ("RUNNING",),
    slots: dict[str, str] | None = None,
) -> PlacedSession:
    """A session with one kernel per status on `agent_id`, its slots counted on the
    agent (as the scheduler's applier leaves them)."""
    slots = slots or {"cpu": "1", "mem": "1073741824"}
    async with manager.ctx.sessions() as db, db.begin():
        user = await db.scalar(
            select(UserRow)
            .join(KeypairRow, KeypairRow.user_id == UserRow.id)
            .where(KeypairRow.access_key == manager.admin_access_key)
        )
        assert user is not None
        project = await db.scalar(select(ProjectRow.id).where(ProjectRow.domain_name == "default"))
        assert project is not None
        running = all(s == "RUNNING" for s in statuses)
        session = SessionRow(
            name=unique("sess"),
            domain_name="default",
            project_id=project,
            user_id=user.id,
            access_key=manager.admin_access_key,
            scaling_group="default",
            image=IMAGE,
            status="RUNNING" if running else "PREPARING",
            cluster_size=len(statuses),
        )
        db.add(session)
        await db.flush()
        if running:
            session.started_at = session.created_at
        placed = PlacedSession(session.id)
        for idx, status in enumerate(statuses, start=1):
            kernel = KernelRow(
                session_id=session.id,
                agent_id=agent_id,
                image=IMAGE,
                status=status,
                cluster_role="main" if idx == 1 else "sub",
                cluster_idx=idx,
                cluster_hostname=f"main{idx}" if idx == 1 else f"sub{idx - 1}",
                requested_slots=slots,
                occupied_slots=slots,
            )
            db.add(kernel)
            await db.flush()
            placed.kernel_ids.append(kernel.id)
        agent = await db.get(AgentRow, agent_id, with_for_update=True)
        assert agent is not None
        placed_slots = Slots.from_wire(slots).scaled(len(statuses))
        agent.occupied_slots = (Slots.from_wire(agent.occupied_slots) + placed_slots).to_wire()
    return placed


async def agent_row(manager: ManagerHandle, agent_id: str) -> AgentRow:
    async with manager.ctx.sessions() as db:
        row = await db.get(AgentRow, agent_id)
    assert row is not None
    return row


async def kernel_rows(manager: ManagerHandle, ids: Sequence[uuid.UUID]) -> list[KernelRow]:
    async with manager.ctx.sessions() as db:
        rows = (await db.execute(select(KernelRow).where(KernelRow.id.in_(ids)))).scalars()
        by_id = {r.id: r for r in rows}
    return [by_id[i] for i in ids]


async def session_row(manager: ManagerHandle, session_id: uuid.UUID) -> SessionRow:
    async with manager.ctx.sessions() as db:
        row = await db.get(SessionRow, session_id)
    assert row is not None
    return row
