"""What every part of a running agent shares: config, identity, runtime, slots, ports, outbox."""

from __future__ import annotations

import uuid
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path

from bai.agent.config import AgentConfig
from bai.agent.events import Outbox
from bai.agent.kernels.ports import PortPool
from bai.agent.kernels.records import KernelStore
from bai.agent.resources.allocator import NodeAllocator
from bai.agent.resources.plugin import ComputePlugin
from bai.agent.runtime.base import KernelRuntime

VERSION = "0.1.0"


@dataclass
class AgentContext:
    config: AgentConfig
    runtime: KernelRuntime
    allocator: NodeAllocator
    state_dir: Path
    boot_id: str = field(default_factory=lambda: str(uuid.uuid4()))
    started_at: datetime = field(default_factory=lambda: datetime.now(UTC))
    outbox: Outbox = field(default_factory=Outbox)
    ports: PortPool = field(init=False)
    store: KernelStore = field(init=False)
    # Set by the registry client: is the manager stream up?
    manager_connected: bool = False
    shutting_down: bool = False

    def __post_init__(self) -> None:
        self.ports = PortPool(*self.config.port_range)
        self.store = KernelStore(self.state_dir / "kernels")
        for sub in ("scratch", "run"):
            (self.state_dir / sub).mkdir(parents=True, exist_ok=True)

    @property
    def plugins(self) -> list[ComputePlugin]:
        return self.allocator.plugins

    @property
    def agent_id(self) -> str:
        return self.config.agent_id

    def scratch_dir(self, kernel_id: str) -> Path:
        return self.state_dir / "scratch" / kernel_id

    def run_dir(self, kernel_id: str) -> Path:
        return self.state_dir / "run" / kernel_id
