"""Kernel operations beyond create/destroy: restart, interrupt, registry sync, reset."""

from __future__ import annotations

import asyncio
import logging
from contextlib import suppress
from dataclasses import dataclass
from datetime import UTC, datetime

from bai.agent.kernels.creation import KernelStartFailed, wait_runner_ready
from bai.agent.kernels.lifecycle import DEFAULT_GRACE, KernelManager
from bai.agent.kernels.records import KernelRecord
from bai.agent.kernels.sandbox_spec import is_batch
from bai.agent.runtime.base import RuntimeFailure
from bai.api.common.v1 import session_pb2
from bai.api.manager.v1 import agent_registry_pb2 as reg
from bai.common.errors import FailedPrecondition

log = logging.getLogger(__name__)

KS = session_pb2.KernelStatus
LR = session_pb2.LifecycleReason
# Request ids remembered per kernel for idempotent restarts.
KEEP_REQUEST_IDS = 32


async def restart_kernel(km: KernelManager, kernel_id: str, request_id: str) -> KernelRecord:
    record = km.get(kernel_id)
    async with km.locks[kernel_id]:
        if request_id and request_id in record.restart_request_ids:
            return record
        km.require_running(kernel_id)
        watcher = km.watchers.pop(kernel_id, None)
        if watcher is not None:
            watcher.cancel()
            with suppress(asyncio.CancelledError):
                await watcher
        km.transition(record, KS.KERNEL_STATUS_RESTARTING, reason=LR.LIFECYCLE_REASON_RESTARTING)
        failure: Exception | None = None
        try:
            km.socket_path(kernel_id).unlink(missing_ok=True)
            await km.ctx.runtime.restart(record.sandbox_id, DEFAULT_GRACE)
            if not is_batch(record):
                await wait_runner_ready(km, record)
        except (RuntimeFailure, KernelStartFailed, OSError) as exc:
            failure = exc
        if request_id:
            record.restart_request_ids = [*record.restart_request_ids, request_id][
                -KEEP_REQUEST_IDS:
            ]
        if failure is None:
            record.started_at = datetime.now(UTC)
        km.transition(record, KS.KERNEL_STATUS_RUNNING, reg.KERNEL_EVENT_TYPE_RESTARTED)
        # A kernel that did not come back is noticed (and reported) by its watcher.
        km.start_watcher(record)
    if failure is not None:
        raise FailedPrecondition(
            f"restarting kernel {kernel_id} failed: {failure}",
            reason="KERNEL_CREATION_FAILED",
            metadata={"kernel_id": kernel_id, "detail": str(failure)},
        )
    return record


async def interrupt_kernel(km: KernelManager, kernel_id: str) -> None:
    km.require_running(kernel_id)
    run = km.active_runs.get(kernel_id)
    if run is not None:
        await run.interrupt()


@dataclass
class SyncResult:
    missing: list[str]
    orphans: list[str]


def sync_registry(km: KernelManager, listed: list[str], destroy_orphans: bool) -> SyncResult:
    live = {r.kernel_id for r in km.live()}
    wanted = set(listed)
    missing = sorted(wanted - live)
    orphans = sorted(live - wanted)
    if destroy_orphans:
        for kernel_id in orphans:
            km.spawn(km.destroy(kernel_id, LR.LIFECYCLE_REASON_NOT_FOUND_IN_MANAGER, False, None))
    return SyncResult(missing, orphans)


async def reset_agent(km: KernelManager) -> list[str]:
    ids = sorted(r.kernel_id for r in km.live())
    results = await asyncio.gather(
        *(km.destroy(k, LR.LIFECYCLE_REASON_AGENT_TERMINATION, True, 0) for k in ids),
        return_exceptions=True,
    )
    for kernel_id, result in zip(ids, results, strict=True):
        if isinstance(result, BaseException):
            log.error(
                "reset could not destroy a kernel",
                extra={"kernel_id": kernel_id, "error": str(result)},
            )
    km.ctx.ports.release_all()
    return ids
