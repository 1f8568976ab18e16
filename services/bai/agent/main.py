"""Agent process: `bai agent start`. Serves the agent contract as placeholders for now."""

from __future__ import annotations

from pydantic import Field

from bai.api.agent.v1 import agent_pb2  # noqa: F401 - registers the contract
from bai.common.component import ComponentConfig, component_main

SERVICES = ["bai.api.agent.v1.AgentService"]


class AgentConfig(ComponentConfig):
    grpc_port: int = Field(default=6011, ge=0, le=65535)
    metrics_port: int = Field(default=6003, ge=0, le=65535)
    agent_id: str = "agent-1"
    scaling_group: str = "default"
    manager_addr: str = "127.0.0.1:8091"


def main(argv: list[str] | None = None) -> int:
    return component_main("agent", AgentConfig, SERVICES, argv)


if __name__ == "__main__":
    raise SystemExit(main())
