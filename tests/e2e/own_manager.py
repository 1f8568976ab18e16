"""In-process manager replicas with their own config over the shared test stack."""

from __future__ import annotations

from dataclasses import dataclass, replace
from typing import Any

from bai.common.server import RunningServer, start_server
from bai.manager.config import AgentConfig as ManagerAgentConfig
from bai.manager.config import DatabaseConfig, ManagerConfig, RedisConfig
from bai.manager.context import ManagerContext
from bai.manager.main import manager_server_spec
from bai.stack.testing import free_ports
from tests.e2e.waits import bounded

# Grace period of our own managers' servers on stop.
STOP_GRACE = 0.2


@dataclass
class OwnManager:
    """An in-process manager replica over the shared stack, restartable on its port."""

    config: ManagerConfig
    ctx: ManagerContext | None = None
    server: RunningServer | None = None

    @property
    def address(self) -> str:
        return f"127.0.0.1:{self.config.grpc_port}"

    async def start(self) -> None:
        self.ctx = ManagerContext.create(self.config)
        self.ctx.start_background()
        # Agents' registry streams never end on their own: a stop would always wait
        # out the whole grace period.
        spec = replace(manager_server_spec(self.ctx), grace_seconds=STOP_GRACE)
        self.server = await bounded(start_server(spec), "the manager's server starts")

    async def stop(self) -> None:
        server, ctx = self.server, self.ctx
        self.server = self.ctx = None
        if server is not None:
            await bounded(server.stop(), "the manager's server stops")
        if ctx is not None:
            await bounded(ctx.close(), "the manager's context closes")


def own_manager_config(stack: Any, *, lost_timeout: float = 30.0) -> ManagerConfig:
    (port,) = free_ports(1)
    heartbeat = min(1.0, lost_timeout / 4)
    return ManagerConfig(
        grpc_port=port,
        metrics_port=0,
        db=DatabaseConfig(url=stack.pg_dsn),
        redis=RedisConfig(url=stack.redis_url),
        agent=ManagerAgentConfig(
            heartbeat_interval=heartbeat,
            agent_lost_timeout=lost_timeout,
            liveness_sweep_interval=min(0.5, lost_timeout / 4),
        ),
    )
