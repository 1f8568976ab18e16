"""The pure scheduler: `schedule(snapshot, config) -> Plan`, no I/O.

The DB side builds a SchedulingSnapshot for one scaling group and applies the
Plan in one transaction, updating an agent only where its revision is still
the one the plan saw.
"""

from bai.manager.scheduling.config import AgentSelector, OrderingPolicy, SchedulerConfig
from bai.manager.scheduling.plan import (
    AgentDelta,
    Diagnostic,
    KernelPlacement,
    Placement,
    Plan,
    SchedulingCheck,
    Shortfall,
)
from bai.manager.scheduling.scheduler import schedule
from bai.manager.scheduling.snapshot import (
    AgentInfo,
    ClusterMode,
    KernelRequest,
    KeypairPolicy,
    KeypairUsage,
    PendingSession,
    SchedulingSnapshot,
    SessionType,
)

__all__ = [
    "AgentDelta",
    "AgentInfo",
    "AgentSelector",
    "ClusterMode",
    "Diagnostic",
    "KernelPlacement",
    "KernelRequest",
    "KeypairPolicy",
    "KeypairUsage",
    "OrderingPolicy",
    "PendingSession",
    "Placement",
    "Plan",
    "SchedulerConfig",
    "SchedulingCheck",
    "SchedulingSnapshot",
    "SessionType",
    "Shortfall",
    "schedule",
]
