"""AgentService (admin view of agents): thin edge over bai.manager.agents.admin."""

from __future__ import annotations

from collections.abc import AsyncIterator
from datetime import timedelta
from typing import Any

from google.protobuf.json_format import ParseDict

from bai.api.common.v1 import node_pb2, types_pb2
from bai.api.manager.v1 import agent_pb2, agent_pb2_grpc
from bai.api.manager.v1 import agent_registry_pb2 as reg
from bai.manager.agents import admin, commands
from bai.manager.agents.pool import unavailable
from bai.manager.api.convert import timestamp
from bai.manager.api.rpc import Call, unary
from bai.manager.api.stream_auth import server_stream
from bai.manager.context import ManagerContext
from bai.manager.sessions import relay
from bai.manager.sessions.control import REACHABLE_AGENT
from bai.manager.validation import Violations

STATUS_NAMES = {
    value: name.removeprefix("AGENT_STATUS_")
    for name, value in agent_pb2.AgentStatus.items()
    if value != agent_pb2.AGENT_STATUS_UNSPECIFIED
}


def _status(name: str) -> Any:
    return (
        agent_pb2.AgentStatus.Value("AGENT_STATUS_" + name) if name in STATUS_NAMES.values() else 0
    )


def _slot_type(stored: object) -> Any:
    name = "SLOT_TYPE_" + str(stored).upper()
    return node_pb2.SlotType.Value(name) if name in node_pb2.SlotType.keys() else 0


def _slot_types(stored: dict[str, Any]) -> list[node_pb2.SlotTypeInfo]:
    return [
        node_pb2.SlotTypeInfo(
            slot_name=name,
            type=_slot_type(info.get("type", "")),
            display_unit=str(info.get("display_unit", "")),
        )
        for name, info in sorted(stored.items())
    ]


def _plugins(stored: dict[str, Any]) -> list[node_pb2.ComputePluginInfo]:
    return [
        ParseDict(info, node_pb2.ComputePluginInfo(), ignore_unknown_fields=True)
        for _key, info in sorted(stored.items())
    ]


def agent_to_proto(view: admin.AgentView, *, with_hardware: bool = False) -> agent_pb2.Agent:
    row = view.row
    agent = agent_pb2.Agent(
        id=row.id,
        status=_status(row.status),
        status_changed_at=timestamp(row.status_changed_at),
        schedulable=row.schedulable,
        scaling_group=row.scaling_group,
        region=row.region,
        addr=row.addr,
        public_host=row.public_host,
        architecture=row.architecture,
        version=row.version,
        available_slots=types_pb2.ResourceSlots(slots=row.available_slots),
        occupied_slots=types_pb2.ResourceSlots(slots=row.occupied_slots),
        slot_types=_slot_types(row.slot_types),
        compute_plugins=_plugins(row.compute_plugins),
        kernel_count=view.kernel_count,
        auto_terminate_abusing_kernel=row.auto_terminate_abusing_kernel,
        first_contact_at=timestamp(row.first_contact),
        last_heartbeat_at=timestamp(row.last_heartbeat_at),
        lost_at=timestamp(row.lost_at),
    )
    if with_hardware and row.hardware_info:
        ParseDict(row.hardware_info, agent.hardware, ignore_unknown_fields=True)
    return agent


class AgentServicer(agent_pb2_grpc.AgentServiceServicer):
    SERVICE = "bai.api.manager.v1.AgentService"

    def __init__(self, ctx: ManagerContext) -> None:
        self.ctx = ctx

    @unary()
    async def ListAgents(
        self, request: agent_pb2.ListAgentsRequest, call: Call
    ) -> agent_pb2.ListAgentsResponse:
        v = Violations()
        size = v.page_size(request.page_size)
        for i, status in enumerate(request.statuses):
            if status not in STATUS_NAMES:
                v.add(f"statuses[{i}]", "must be a known agent status")
        if request.scaling_group:
            v.name("scaling_group", request.scaling_group)
        v.text("architecture", request.architecture, 32)
        v.raise_if_any()
        filters = admin.AgentFilters(
            statuses=tuple(sorted({STATUS_NAMES[s] for s in request.statuses})),
            scaling_group=request.scaling_group,
            schedulable=request.schedulable if request.HasField("schedulable") else None,
            architecture=request.architecture,
        )
        async with self.ctx.sessions() as db:
            views, token = await admin.list_agents(
                db,
                call.principal,
                self.ctx.config.agent.hide_agents,
                filters,
                size,
                request.page_token,
            )
        return agent_pb2.ListAgentsResponse(
            agents=[agent_to_proto(view) for view in views], next_page_token=token
        )

    @unary()
    async def GetAgent(
        self, request: agent_pb2.GetAgentRequest, call: Call
    ) -> agent_pb2.GetAgentResponse:
        v = Violations()
        v.name("agent_id", request.agent_id)
        v.raise_if_any()
        async with self.ctx.sessions() as db:
            view = await admin.get_agent(
                db, call.principal, self.ctx.config.agent.hide_agents, request.agent_id
            )
        return agent_pb2.GetAgentResponse(agent=agent_to_proto(view, with_hardware=True))

    @unary(audit=("agent", "update"))
    async def UpdateAgent(
        self, request: agent_pb2.UpdateAgentRequest, call: Call
    ) -> agent_pb2.UpdateAgentResponse:
        v = Violations()
        v.name("agent.id", request.agent.id)
        fields = v.mask(request.update_mask.paths, admin.UPDATABLE)
        changes = {name: getattr(request.agent, name) for name in fields}
        if "scaling_group" in changes:
            v.name("agent.scaling_group", changes["scaling_group"])
        v.raise_if_any()
        call.entity_id = request.agent.id
        async with self.ctx.sessions() as db, db.begin():
            view = await admin.update_agent(db, call.principal, request.agent.id, changes)
        if {"scaling_group", "auto_terminate_abusing_kernel"} & set(fields):
            update = reg.AgentConfigUpdate(
                scaling_group=view.row.scaling_group,
                auto_terminate_abusing_kernel=view.row.auto_terminate_abusing_kernel,
            )
            update.heartbeat_interval.FromNanoseconds(
                int(self.ctx.config.agent.heartbeat_interval * 1e9)
            )
            await commands.send(
                self.ctx.redis,
                self.ctx.agent_streams,
                request.agent.id,
                reg.ConnectResponse(config=update),
            )
        return agent_pb2.UpdateAgentResponse(agent=agent_to_proto(view))

    @server_stream()
    async def WatchAgentStats(
        self, request: agent_pb2.WatchAgentStatsRequest, call: Call
    ) -> AsyncIterator[agent_pb2.WatchAgentStatsResponse]:
        v = Violations()
        v.name("agent_id", request.agent_id)
        interval = (
            request.interval.ToTimedelta() if request.HasField("interval") else timedelta(seconds=5)
        )
        if interval < timedelta(seconds=1):
            v.add("interval", "must be at least 1 s")
        v.raise_if_any()
        async with self.ctx.sessions() as db:
            view = await admin.get_agent(
                db, call.principal, self.ctx.config.agent.hide_agents, request.agent_id
            )
        if view.row.status not in REACHABLE_AGENT:
            raise unavailable(view.row.id, f"agent {view.row.id} is {view.row.status}")
        async for sample in relay.watch_node_stats(
            self.ctx.agent_pool, view.row.id, interval, request.include_kernels
        ):
            yield sample
