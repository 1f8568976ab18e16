"""The agent's AgentService: kernel and node handlers behind one edge."""

from __future__ import annotations

from bai.agent.api.kernel_rpcs import KernelRpcs
from bai.agent.api.node_rpcs import NodeRpcs
from bai.agent.context import AgentContext
from bai.agent.kernels.lifecycle import KernelManager
from bai.api.agent.v1 import agent_pb2_grpc


class AgentServicer(KernelRpcs, NodeRpcs, agent_pb2_grpc.AgentServiceServicer):
    SERVICE = "bai.api.agent.v1.AgentService"

    def __init__(self, ctx: AgentContext, km: KernelManager) -> None:
        self.ctx = ctx
        self.config = ctx.config
        self.km = km
