"""What the agent reports about its node: hardware, plugins, slots, health."""

from __future__ import annotations

from datetime import UTC, datetime

from bai.agent.context import VERSION, AgentContext
from bai.agent.resources.hardware import gather_host_facts
from bai.agent.resources.plugin import ComputePlugin
from bai.agent.runtime.base import RuntimeFailure
from bai.api.agent.v1 import agent_pb2
from bai.api.common.v1 import node_pb2, types_pb2
from bai.common.slots import Slots

_SLOT_TYPES = {
    "count": node_pb2.SLOT_TYPE_COUNT,
    "bytes": node_pb2.SLOT_TYPE_BYTES,
    "unique": node_pb2.SLOT_TYPE_UNIQUE,
}
_PLUGIN_STATUS = {
    "healthy": node_pb2.COMPUTE_PLUGIN_STATUS_HEALTHY,
    "degraded": node_pb2.COMPUTE_PLUGIN_STATUS_DEGRADED,
    "offline": node_pb2.COMPUTE_PLUGIN_STATUS_OFFLINE,
    "unavailable": node_pb2.COMPUTE_PLUGIN_STATUS_UNAVAILABLE,
}


def resource_slots(slots: Slots) -> types_pb2.ResourceSlots:
    return types_pb2.ResourceSlots(slots=slots.to_wire())


def slot_types(plugins: list[ComputePlugin]) -> list[node_pb2.SlotTypeInfo]:
    return [
        node_pb2.SlotTypeInfo(
            slot_name=info.name,
            type=_SLOT_TYPES.get(info.kind, node_pb2.SLOT_TYPE_COUNT),
            display_unit=info.display_unit,
        )
        for plugin in plugins
        for info in plugin.slot_infos()
    ]


def plugin_info(plugin: ComputePlugin) -> node_pb2.ComputePluginInfo:
    status = plugin.status()
    return node_pb2.ComputePluginInfo(
        key=plugin.key,
        version=status.version,
        status=_PLUGIN_STATUS.get(status.state, node_pb2.COMPUTE_PLUGIN_STATUS_UNSPECIFIED),
        status_message=status.message,
        slot_types=slot_types([plugin]),
        metadata=status.metadata,
    )


async def hardware_info(ctx: AgentContext) -> node_pb2.HardwareInfo:
    facts = gather_host_facts()
    try:
        runtime = await ctx.runtime.describe()
    except RuntimeFailure as exc:
        runtime = f"{ctx.runtime.name} (unavailable: {exc})"
    info = node_pb2.HardwareInfo(
        hostname=facts.hostname,
        os=facts.os,
        kernel_version=facts.kernel_version,
        architecture=facts.architecture,
        cpu_model=facts.cpu_model,
        cpu_cores=facts.cpu_cores,
        memory_bytes=facts.memory_bytes,
        container_runtime=runtime,
        compute_plugins=[plugin_info(p) for p in ctx.plugins],
    )
    for plugin in ctx.plugins:
        if plugin.key in ("cpu", "mem"):
            continue
        for device in plugin.devices():
            info.devices.append(
                node_pb2.DeviceInfo(
                    plugin=device.plugin,
                    device_id=device.device_id,
                    model_name=device.model_name,
                    memory_bytes=device.memory_bytes,
                    numa_node=device.numa_node,
                    bus_id=device.bus_id,
                    properties=device.properties,
                )
            )
    return info


async def health(ctx: AgentContext, kernel_count: int) -> agent_pb2.GetHealthResponse:
    checks = []
    try:
        checks.append(
            agent_pb2.HealthCheck(
                name="container-runtime", ok=True, message=await ctx.runtime.describe()
            )
        )
    except RuntimeFailure as exc:
        checks.append(agent_pb2.HealthCheck(name="container-runtime", ok=False, message=str(exc)))
    for plugin in ctx.plugins:
        status = plugin.status()
        checks.append(
            agent_pb2.HealthCheck(
                name=f"plugin:{plugin.key}",
                ok=status.healthy or status.state == "unavailable",
                message=status.message or status.state,
            )
        )
    checks.append(
        agent_pb2.HealthCheck(
            name="manager-stream",
            ok=ctx.manager_connected,
            message="connected" if ctx.manager_connected else "not connected",
        )
    )
    if not checks[0].ok:
        overall = agent_pb2.HEALTH_STATUS_UNHEALTHY
    elif all(check.ok for check in checks):
        overall = agent_pb2.HEALTH_STATUS_HEALTHY
    else:
        overall = agent_pb2.HEALTH_STATUS_DEGRADED
    reply = agent_pb2.GetHealthResponse(
        status=overall,
        agent_id=ctx.agent_id,
        version=VERSION,
        boot_id=ctx.boot_id,
        checks=checks,
        kernel_count=kernel_count,
    )
    reply.uptime.FromTimedelta(datetime.now(UTC) - ctx.started_at)
    return reply
