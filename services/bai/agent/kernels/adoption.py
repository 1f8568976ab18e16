"""A restarted agent takes its kernels back.

The on-disk records say what the agent had; the runtime says which sandboxes
(labelled with this agent's id) still exist. Live kernels are re-adopted with
their allocations and ports restored (never allocated twice); kernels whose
sandbox vanished are reported TERMINATED with CONTAINER_NOT_FOUND; kernels
caught mid-creation or mid-destruction are finished off; sandboxes with no
live record are destroyed.
"""

from __future__ import annotations

import logging
from contextlib import suppress
from dataclasses import dataclass, field
from datetime import UTC, datetime

from bai.agent.kernels.lifecycle import KEEP_TERMINATED, KernelManager
from bai.agent.kernels.records import KernelRecord
from bai.agent.runtime.base import SandboxNotFound, SandboxState
from bai.api.common.v1 import session_pb2
from bai.api.manager.v1 import agent_registry_pb2 as reg

log = logging.getLogger(__name__)

KS = session_pb2.KernelStatus
LR = session_pb2.LifecycleReason


@dataclass
class AdoptionReport:
    adopted: list[str] = field(default_factory=list)
    vanished: list[str] = field(default_factory=list)
    exited: list[str] = field(default_factory=list)
    abandoned: list[str] = field(default_factory=list)
    removed_sandboxes: list[str] = field(default_factory=list)


async def adopt(km: KernelManager) -> AdoptionReport:
    ctx = km.ctx
    report = AdoptionReport()
    sandboxes = {s.kernel_id: s for s in await ctx.runtime.list_sandboxes(ctx.agent_id)}
    now = datetime.now(UTC)
    for record in ctx.store.load_all():
        if record.is_terminal:
            if record.terminated_at and now - record.terminated_at > KEEP_TERMINATED:
                ctx.store.delete(record.kernel_id)
            else:
                km.records[record.kernel_id] = record
            continue
        km.records[record.kernel_id] = record
        state = sandboxes.pop(record.kernel_id, None)
        await _adopt_one(km, record, state, report)
    for state in sandboxes.values():
        log.warning(
            "removing a sandbox with no live kernel record", extra={"sandbox_id": state.sandbox_id}
        )
        with suppress(SandboxNotFound):
            await ctx.runtime.stop(state.sandbox_id, 0)
            await ctx.runtime.remove(state.sandbox_id)
        report.removed_sandboxes.append(state.sandbox_id)
    return report


async def _adopt_one(
    km: KernelManager, record: KernelRecord, state: SandboxState | None, report: AdoptionReport
) -> None:
    ctx = km.ctx
    # Whatever happens next, the kernel holds its slots and ports until released.
    ctx.allocator.restore(record.kernel_id, record.allocations)
    ctx.ports.restore(record.kernel_id, record.host_ports)
    if state is not None and state.sandbox_id != record.sandbox_id and record.sandbox_id:
        state = None
    if record.status in (KS.KERNEL_STATUS_RUNNING, KS.KERNEL_STATUS_RESTARTING) and (
        state is not None
    ):
        if record.status == KS.KERNEL_STATUS_RESTARTING:
            km.transition(record, KS.KERNEL_STATUS_RUNNING, reg.KERNEL_EVENT_TYPE_RESTARTED)
        if state.running:
            km.start_watcher(record)
            report.adopted.append(record.kernel_id)
        else:
            await km.finish_exit(record, state)
            report.exited.append(record.kernel_id)
        return
    if record.status in (KS.KERNEL_STATUS_RUNNING, KS.KERNEL_STATUS_RESTARTING) and state is None:
        km.release(record)
        await km.remove_files(record)
        km.transition(
            record,
            KS.KERNEL_STATUS_TERMINATED,
            reg.KERNEL_EVENT_TYPE_TERMINATED,
            reason=LR.LIFECYCLE_REASON_CONTAINER_NOT_FOUND,
            message="the kernel's container vanished while the agent was away",
        )
        report.vanished.append(record.kernel_id)
        return
    if (
        record.status == KS.KERNEL_STATUS_TERMINATING
        or record.status == KS.KERNEL_STATUS_RESTARTING
    ):
        await km.destroy(record.kernel_id, record.status_reason, forced=True, grace_seconds=0)
        report.abandoned.append(record.kernel_id)
        return
    # Caught mid-creation: the task that was bringing it up died with the agent.
    if state is not None and not record.sandbox_id:
        record.sandbox_id = state.sandbox_id
    await km.cancel_creation(
        record, LR.LIFECYCLE_REASON_AGENT_TERMINATION, "the agent restarted while creating it"
    )
    report.abandoned.append(record.kernel_id)
