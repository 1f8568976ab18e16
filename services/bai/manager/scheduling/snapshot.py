"""What the scheduler sees: an immutable picture of one scaling group at one moment.

The DB side builds it (pending sessions of the group, its ALIVE schedulable
agents, the policies and current usage of everyone who has a pending session);
`schedule()` only reads it. Ids are strings (UUIDs as text) so that the
scheduler needs nothing beyond the standard library and `Slots`.
"""

from __future__ import annotations

import enum
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import datetime
from types import MappingProxyType
from typing import TypeVar

from bai.common.slots import Slots

_V = TypeVar("_V")


def frozen_mapping(items: Mapping[str, _V] | None = None) -> Mapping[str, _V]:
    """A read-only copy, so that a snapshot cannot change under the scheduler."""
    return MappingProxyType(dict(items or {}))


class SessionType(enum.StrEnum):
    """Values as stored in `sessions.session_type`."""

    INTERACTIVE = "interactive"
    BATCH = "batch"
    INFERENCE = "inference"
    SYSTEM = "system"


class ClusterMode(enum.StrEnum):
    """Values as stored in `sessions.cluster_mode`."""

    SINGLE_NODE = "single-node"
    MULTI_NODE = "multi-node"


@dataclass(frozen=True, slots=True)
class KernelRequest:
    kernel_id: str
    cluster_role: str
    slots: Slots


@dataclass(frozen=True, slots=True)
class PendingSession:
    id: str
    access_key: str
    user_id: str
    project_id: str
    domain_name: str
    created_at: datetime
    kernels: tuple[KernelRequest, ...]
    session_type: SessionType = SessionType.INTERACTIVE
    # Higher first.
    priority: int = 0
    architecture: str = "x86_64"
    cluster_mode: ClusterMode = ClusterMode.SINGLE_NODE
    # Designated agents: when non-empty, only these may take the session.
    agent_list: tuple[str, ...] = ()
    # The agents that hold its image when no registry has it (built or committed on
    # a node, so it cannot be pulled elsewhere); None: any agent can get the image.
    image_agents: tuple[str, ...] | None = None
    starts_at: datetime | None = None
    # None: no dependencies; False: some dependency has not succeeded yet.
    dependencies_satisfied: bool | None = None


@dataclass(frozen=True, slots=True)
class AgentInfo:
    id: str
    architecture: str
    capacity: Slots
    occupied: Slots
    # The agent row's optimistic-concurrency counter, echoed in the plan.
    revision: int
    container_count: int = 0
    # 0: no limit.
    max_containers: int = 0


@dataclass(frozen=True, slots=True)
class KeypairPolicy:
    # A slot missing here is unlimited.
    total_resource_slots: Slots = field(default_factory=Slots)
    # 0: unlimited (both).
    max_concurrent_sessions: int = 0
    max_concurrent_sftp_sessions: int = 0


@dataclass(frozen=True, slots=True)
class KeypairUsage:
    """What an access key's live (non-finished) sessions hold now."""

    occupied: Slots = field(default_factory=Slots)
    # Non-SYSTEM sessions; SYSTEM (SFTP) sessions are counted apart.
    concurrent_sessions: int = 0
    concurrent_system_sessions: int = 0


@dataclass(frozen=True)
class SchedulingSnapshot:
    now: datetime
    scaling_group: str
    pending: tuple[PendingSession, ...]
    agents: tuple[AgentInfo, ...]
    # Slot names the platform knows; a request for any other cannot be placed.
    known_slots: frozenset[str]
    # An access key without a policy here has no limits.
    keypair_policies: Mapping[str, KeypairPolicy] = field(default_factory=frozen_mapping)
    keypair_usage: Mapping[str, KeypairUsage] = field(default_factory=frozen_mapping)
    # total_resource_slots per user id / project id / domain name; missing: unlimited.
    user_limits: Mapping[str, Slots] = field(default_factory=frozen_mapping)
    project_limits: Mapping[str, Slots] = field(default_factory=frozen_mapping)
    domain_limits: Mapping[str, Slots] = field(default_factory=frozen_mapping)
    user_usage: Mapping[str, Slots] = field(default_factory=frozen_mapping)
    project_usage: Mapping[str, Slots] = field(default_factory=frozen_mapping)
    domain_usage: Mapping[str, Slots] = field(default_factory=frozen_mapping)
    # Round-robin: the agent id chosen last (the next choice starts after it).
    round_robin_cursor: str | None = None

    def __post_init__(self) -> None:
        for name in (
            "keypair_policies",
            "keypair_usage",
            "user_limits",
            "project_limits",
            "domain_limits",
            "user_usage",
            "project_usage",
            "domain_usage",
        ):
            value = getattr(self, name)
            if not isinstance(value, MappingProxyType):
                object.__setattr__(self, name, frozen_mapping(value))
