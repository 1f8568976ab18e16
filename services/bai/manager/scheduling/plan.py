"""What the scheduler decides: placements, agent deltas and why the rest waits."""

from __future__ import annotations

import enum
from collections.abc import Mapping
from dataclasses import dataclass
from decimal import Decimal

from bai.common.slots import Slots


class SchedulingCheck(enum.Enum):
    """Names match SchedulingCheck in bai/api/manager/v1/session.proto (minus the prefix)."""

    RESERVED_TIME = 1
    DEPENDENCIES = 2
    CONCURRENCY = 3
    SFTP_CONCURRENCY = 4
    KEYPAIR_RESOURCE_LIMIT = 5
    USER_RESOURCE_LIMIT = 6
    PROJECT_RESOURCE_LIMIT = 7
    DOMAIN_RESOURCE_LIMIT = 8
    AGENT_RESOURCES = 9
    ARCHITECTURE = 10
    DESIGNATED_AGENT = 11
    CONTAINER_LIMIT = 12
    PRIORITY = 13
    IMAGE_LOCATION = 14


@dataclass(frozen=True, slots=True)
class Shortfall:
    slot: str
    requested: Decimal
    # What the limit or the best agent still had free (may be negative when
    # usage is already above a lowered limit).
    available: Decimal


@dataclass(frozen=True, slots=True)
class Diagnostic:
    """The first check a session failed this round."""

    check: SchedulingCheck
    message: str
    shortfalls: tuple[Shortfall, ...] = ()
    # The agent concerned, for agent checks that point at one agent.
    agent_id: str | None = None


@dataclass(frozen=True, slots=True)
class KernelPlacement:
    kernel_id: str
    agent_id: str
    slots: Slots


@dataclass(frozen=True, slots=True)
class Placement:
    session_id: str
    kernels: tuple[KernelPlacement, ...]


@dataclass(frozen=True, slots=True)
class AgentDelta:
    """What the plan adds to one agent; apply only if its revision is still `revision`."""

    agent_id: str
    revision: int
    occupied_delta: Slots
    # The snapshot's occupied slots plus the delta.
    occupied_after: Slots
    containers_delta: int


@dataclass(frozen=True)
class Plan:
    placements: tuple[Placement, ...]
    agent_deltas: tuple[AgentDelta, ...]
    # Per unplaced session considered this round.
    diagnostics: Mapping[str, Diagnostic]
    # Sessions not considered because max_sessions_per_round was reached:
    # their previous diagnostics still stand.
    deferred: tuple[str, ...]
    # The agent chosen last by round-robin (unchanged when nothing was placed).
    round_robin_cursor: str | None
