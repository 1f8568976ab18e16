"""A fake AgentService for CLI tests: a real grpc server, the agents in memory.

It follows proto/bai/api/manager/v1/agent.proto: ListAgents (filters, ordered by id,
paging; no hardware), GetAgent (with hardware), UpdateAgent (update_mask paths
schedulable, scaling_group and auto_terminate_abusing_kernel; REFERENCE_NOT_FOUND for
an unknown scaling group) and WatchAgentStats (interval at least 1 s; AGENT_UNAVAILABLE
unless the agent is alive; kernels only with include_kernels), with NOT_FOUND for unknown
agents and the credential checks and call log of tests.client.fakes. The stats stream
sends the agent's samples and ends, or with ``Fleet.hold_open`` stays open until the
client cancels. ``Fleet.ended`` is set when a stream call ends, either way.
"""

from __future__ import annotations

import threading
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any

import grpc

from bai.api.common.v1 import node_pb2, stats_pb2, types_pb2
from bai.api.manager.v1 import agent_pb2, agent_pb2_grpc
from tests.client.fakes import Abort, Fake, fail, handler, invalid, page_of, serve

SCALING_GROUPS = ("default", "gpu")
UPDATABLE = ("schedulable", "scaling_group", "auto_terminate_abusing_kernel")
T0 = 1_700_000_000
GIB = 1 << 30
MIB = 1 << 20


def agent_not_found(agent_id: str) -> Abort:
    return fail(grpc.StatusCode.NOT_FOUND, f"agent {agent_id!r} not found", "NOT_FOUND")


def _slot_types() -> list[node_pb2.SlotTypeInfo]:
    return [
        node_pb2.SlotTypeInfo(slot_name="cpu", type=node_pb2.SLOT_TYPE_COUNT, display_unit="Core"),
        node_pb2.SlotTypeInfo(slot_name="mem", type=node_pb2.SLOT_TYPE_BYTES, display_unit="GiB"),
    ]


def _plugins(cuda: bool) -> list[node_pb2.ComputePluginInfo]:
    healthy = node_pb2.COMPUTE_PLUGIN_STATUS_HEALTHY
    plugins = [
        node_pb2.ComputePluginInfo(key="cpu", version="1.0", status=healthy),
        node_pb2.ComputePluginInfo(key="mem", version="1.0", status=healthy),
    ]
    if cuda:
        plugins.append(
            node_pb2.ComputePluginInfo(
                key="cuda",
                version="0.9",
                status=node_pb2.COMPUTE_PLUGIN_STATUS_DEGRADED,
                status_message="GPU 3 fell off the bus",
                slot_types=[node_pb2.SlotTypeInfo(slot_name="cuda.device")],
                metadata={"driver_version": "570.86", "cuda_version": "12.8"},
            )
        )
    return plugins


@dataclass
class Fleet:
    """In-memory agents and stats samples shared by the servicer and tests."""

    fake: Fake
    agents: dict[str, agent_pb2.Agent] = field(default_factory=dict)
    samples: dict[str, list[agent_pb2.WatchAgentStatsResponse]] = field(default_factory=dict)
    hold_open: bool = False
    ended: threading.Event = field(default_factory=threading.Event)

    def add(self, agent_id: str, **kw: Any) -> agent_pb2.Agent:
        host = f"10.0.0.{len(self.agents) + 5}"
        defaults: dict[str, Any] = {
            "status": agent_pb2.AGENT_STATUS_ALIVE,
            "schedulable": True,
            "scaling_group": "default",
            "addr": f"{host}:6011",
            "public_host": host,
            "architecture": "x86_64",
            "version": "26.1.0",
            "slot_types": _slot_types(),
        }
        agent = agent_pb2.Agent(id=agent_id, **{**defaults, **kw})
        for name in ("status_changed_at", "first_contact_at", "last_heartbeat_at"):
            getattr(agent, name).FromSeconds(T0)
        self.agents[agent_id] = agent
        return agent

    def get(self, agent_id: str) -> agent_pb2.Agent:
        if agent_id not in self.agents:
            raise agent_not_found(agent_id)
        return self.agents[agent_id]

    def seed(self) -> None:
        """A GPU agent (with hardware and samples), a CPU agent and a lost one."""
        gpu = self.add(
            "i-gpu01",
            scaling_group="gpu",
            available_slots=types_pb2.ResourceSlots(
                slots={"cpu": "32", "mem": str(256 * GIB), "cuda.device": "4"}
            ),
            occupied_slots=types_pb2.ResourceSlots(
                slots={"cpu": "4", "mem": str(16 * GIB), "cuda.device": "1"}
            ),
            compute_plugins=_plugins(cuda=True),
            kernel_count=2,
            auto_terminate_abusing_kernel=True,
        )
        gpu.slot_types.append(
            node_pb2.SlotTypeInfo(
                slot_name="cuda.device", type=node_pb2.SLOT_TYPE_COUNT, display_unit="GPU"
            )
        )
        gpu.hardware.CopyFrom(
            node_pb2.HardwareInfo(
                hostname="gpu01",
                os="Debian GNU/Linux 13",
                kernel_version="6.12.0",
                architecture="x86_64",
                cpu_model="AMD EPYC 9354",
                cpu_cores=32,
                memory_bytes=256 * GIB,
                container_runtime="docker 26.1.5",
                compute_plugins=_plugins(cuda=True),
                devices=[
                    node_pb2.DeviceInfo(
                        plugin="cuda",
                        device_id=str(i),
                        model_name="NVIDIA H100",
                        memory_bytes=80 * GIB,
                        numa_node=i // 2,
                        bus_id=f"0000:1{i}:00.0",
                    )
                    for i in range(4)
                ],
            )
        )
        self.add(
            "i-node01",
            available_slots=types_pb2.ResourceSlots(slots={"cpu": "8", "mem": str(32 * GIB)}),
            compute_plugins=_plugins(cuda=False),
        )
        lost = self.add(
            "i-node02",
            status=agent_pb2.AGENT_STATUS_LOST,
            schedulable=False,
            available_slots=types_pb2.ResourceSlots(slots={"cpu": "8", "mem": str(32 * GIB)}),
            version="26.0.3",
        )
        lost.lost_at.FromSeconds(T0 + 60)
        self.samples["i-gpu01"] = [self._sample(i) for i in range(3)]

    @staticmethod
    def _sample(i: int) -> agent_pb2.WatchAgentStatsResponse:
        """Every 5 s: rx grows 5 MiB, tx 1 MiB; one GPU and one kernel."""
        sample = agent_pb2.WatchAgentStatsResponse(
            node=stats_pb2.NodeStats(
                cpu_util_percent=250.0 + i,
                mem_used_bytes=3 * GIB,
                mem_total_bytes=256 * GIB,
                net_rx_bytes=GIB + i * 5 * MIB,
                net_tx_bytes=300 * MIB + i * MIB,
                disk_used_bytes=50 * GIB,
                disk_total_bytes=200 * GIB,
                devices=[
                    stats_pb2.DeviceStats(
                        plugin="cuda",
                        device_id="0",
                        util_percent=45.0,
                        mem_used_bytes=3 * GIB,
                        mem_total_bytes=80 * GIB,
                    )
                ],
            ),
            kernels=[
                stats_pb2.KernelStats(
                    kernel_id="k-1",
                    cpu_util_percent=99.5,
                    mem_used_bytes=GIB,
                    mem_limit_bytes=8 * GIB,
                    net_rx_bytes=10 * MIB,
                    net_tx_bytes=MIB,
                    io_read_bytes=2 * MIB,
                    io_write_bytes=512 * 1024,
                )
            ],
        )
        sample.time.FromSeconds(T0 + 5 * i)
        return sample


def _matches(agent: agent_pb2.Agent, request: agent_pb2.ListAgentsRequest) -> bool:
    return all(
        (
            not request.statuses or agent.status in request.statuses,
            not request.scaling_group or agent.scaling_group == request.scaling_group,
            not request.HasField("schedulable") or agent.schedulable == request.schedulable,
            not request.architecture or agent.architecture == request.architecture,
        )
    )


def _without_hardware(agent: agent_pb2.Agent) -> agent_pb2.Agent:
    listed = agent_pb2.Agent()
    listed.CopyFrom(agent)
    listed.ClearField("hardware")
    return listed


class FakeAgents(agent_pb2_grpc.AgentServiceServicer):
    SERVICE = "bai.api.manager.v1.AgentService"

    def __init__(self, fleet: Fleet) -> None:
        self.fleet = fleet
        self.fake = fleet.fake

    @handler
    def ListAgents(self, request: Any, context: Any) -> Any:
        found = [
            _without_hardware(self.fleet.agents[agent_id])
            for agent_id in sorted(self.fleet.agents)
            if _matches(self.fleet.agents[agent_id], request)
        ]
        page, token = page_of(request, found)
        return agent_pb2.ListAgentsResponse(agents=page, next_page_token=token)

    @handler
    def GetAgent(self, request: Any, context: Any) -> Any:
        return agent_pb2.GetAgentResponse(agent=self.fleet.get(request.agent_id))

    @handler
    def UpdateAgent(self, request: Any, context: Any) -> Any:
        agent = self.fleet.get(request.agent.id)
        paths = list(request.update_mask.paths)
        if not paths or any(p not in UPDATABLE for p in paths):
            raise invalid("update_mask", f"paths must be some of {', '.join(UPDATABLE)}")
        if "scaling_group" in paths and request.agent.scaling_group not in SCALING_GROUPS:
            raise fail(
                grpc.StatusCode.NOT_FOUND,
                f"scaling group {request.agent.scaling_group!r} does not exist",
                "REFERENCE_NOT_FOUND",
            )
        for path in paths:
            setattr(agent, path, getattr(request.agent, path))
        return agent_pb2.UpdateAgentResponse(agent=_without_hardware(agent))

    def WatchAgentStats(self, request: Any, context: grpc.ServicerContext) -> Iterator[Any]:
        try:
            self.fake.enter(context, request, f"/{self.SERVICE}/WatchAgentStats")
            if request.HasField("interval") and request.interval.ToTimedelta().total_seconds() < 1:
                raise invalid("interval", "must be at least 1 s")
            agent = self.fleet.get(request.agent_id)
            if agent.status != agent_pb2.AGENT_STATUS_ALIVE:
                raise fail(
                    grpc.StatusCode.UNAVAILABLE,
                    f"agent {agent.id} is LOST",
                    "AGENT_UNAVAILABLE",
                    metadata={"agent_id": agent.id},
                )
        except Abort as exc:
            context.abort_with_status(exc.status)
        context.add_callback(self.fleet.ended.set)
        for sample in self.fleet.samples.get(request.agent_id, []):
            sent = agent_pb2.WatchAgentStatsResponse()
            sent.CopyFrom(sample)
            if not request.include_kernels:
                sent.ClearField("kernels")
            yield sent
        if self.fleet.hold_open:
            # Bounded, so that a client that never cancels fails its test instead of hanging.
            self.fleet.ended.wait(timeout=30)


@contextmanager
def agent_server() -> Iterator[Fleet]:
    """The fake manager (auth, agents) on a free port, with the seeded fleet."""
    fleet = Fleet(Fake())
    fleet.seed()
    with serve(
        fleet.fake, [(agent_pb2_grpc.add_AgentServiceServicer_to_server, FakeAgents(fleet))]
    ):
        yield fleet
