"""Small builders for scheduling snapshots: agents, sessions, policies."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

from bai.common.slots import Slots
from bai.manager.scheduling import (
    AgentInfo,
    ClusterMode,
    KernelRequest,
    PendingSession,
    SchedulingSnapshot,
    SessionType,
)

T0 = datetime(2026, 1, 1, tzinfo=UTC)
KNOWN = frozenset({"cpu", "mem", "cuda.device"})


def slots(cpu: Any = 0, mem: Any = 0, gpu: Any = 0, **extra: Any) -> Slots:
    raw = {"cpu": cpu, "mem": mem, "cuda.device": gpu, **extra}
    return Slots({k: str(v) for k, v in raw.items() if str(v) != "0"})


def agent(
    agent_id: str,
    cpu: Any = 8,
    mem: Any = 16,
    gpu: Any = 0,
    *,
    used: Slots | None = None,
    arch: str = "x86_64",
    containers: int = 0,
    max_containers: int = 0,
    revision: int = 7,
) -> AgentInfo:
    return AgentInfo(
        id=agent_id,
        architecture=arch,
        capacity=slots(cpu, mem, gpu),
        occupied=used or Slots(),
        revision=revision,
        container_count=containers,
        max_containers=max_containers,
    )


def session(
    session_id: str,
    cpu: Any = 1,
    mem: Any = 1,
    gpu: Any = 0,
    *,
    at: int = 0,
    kernels: int = 1,
    multi: bool = False,
    access_key: str = "AK",
    user: str = "user",
    project: str = "project",
    domain: str = "domain",
    extra: dict[str, Any] | None = None,
    **fields: Any,
) -> PendingSession:
    request = slots(cpu, mem, gpu, **(extra or {}))
    return PendingSession(
        id=session_id,
        access_key=access_key,
        user_id=user,
        project_id=project,
        domain_name=domain,
        created_at=T0 + timedelta(seconds=at),
        kernels=tuple(
            KernelRequest(f"{session_id}-k{i}", "main" if i == 0 else "sub", request)
            for i in range(kernels)
        ),
        cluster_mode=ClusterMode.MULTI_NODE if multi else ClusterMode.SINGLE_NODE,
        **fields,
    )


def snapshot(
    sessions: list[PendingSession], agents: list[AgentInfo], **fields: Any
) -> SchedulingSnapshot:
    return SchedulingSnapshot(
        now=fields.pop("now", T0 + timedelta(hours=1)),
        scaling_group="default",
        pending=tuple(sessions),
        agents=tuple(agents),
        known_slots=fields.pop("known_slots", KNOWN),
        **fields,
    )


__all__ = ["T0", "SessionType", "agent", "session", "slots", "snapshot"]
