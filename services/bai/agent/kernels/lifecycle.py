"""The kernel manager: the agent's kernels, their states and transitions.

Every state change is saved to the on-disk registry first and then reported
as a KernelEvent into the outbox (the manager's source of truth). Creation
runs as one task per kernel (kernels.creation); a watcher per running kernel
turns the sandbox's exit into TERMINATED. No gRPC here.
"""

from __future__ import annotations

import asyncio
import functools
import logging
import shutil
import uuid
from collections import defaultdict
from collections.abc import Callable, Coroutine
from contextlib import suppress
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from bai.agent.context import AgentContext
from bai.agent.kernels.exits import ExitVerdict, classify_exit, read_batch_result
from bai.agent.kernels.image_ops import ImageService
from bai.agent.kernels.mounts import check_mounts, missing_source
from bai.agent.kernels.records import KernelRecord
from bai.agent.kernels.sandbox_spec import is_batch
from bai.agent.resources.plugin import AllocationFailed, InvalidRequest
from bai.agent.runner.client import RunHandle, RunnerClient
from bai.agent.runner.layout import (
    SOCKET_FILE,
    compile_runner_package,
    copy_runner_package,
    runner_command,
    runner_package_dir,
)
from bai.agent.runtime.base import RuntimeFailure, SandboxNotFound, SandboxState, SandboxStats
from bai.api.agent.v1 import agent_pb2
from bai.api.common.v1 import session_pb2
from bai.api.manager.v1 import agent_registry_pb2 as reg
from bai.common.errors import (
    BaiError,
    FailedPrecondition,
    FieldViolation,
    InvalidArgument,
    NotFound,
    ResourceExhausted,
    Unavailable,
)
from bai.common.slots import SlotParseError, Slots

log = logging.getLogger(__name__)

KS = session_pb2.KernelStatus
LR = session_pb2.LifecycleReason
DEFAULT_GRACE = 10.0
KEEP_TERMINATED = timedelta(hours=1)


@dataclass(frozen=True)
class RunnerSetup:
    """How kernels run the in-kernel runner (bai.agent.runner, wired by main)."""

    connect: Callable[[Path], RunnerClient]
    command: list[str]
    package_dir: Path

    @classmethod
    def default(cls, copy_to: Path | None = None) -> RunnerSetup:
        """The installed runner package, or a copy of it in `copy_to`."""
        package = copy_runner_package(copy_to) if copy_to else runner_package_dir()
        compile_runner_package(package)
        return cls(RunnerClient, runner_command(), package)


@dataclass
class CreateOutcome:
    kernel_id: str
    record: KernelRecord | None = None
    error: BaiError | None = None


@dataclass
class DestroyOutcome:
    found: bool
    exit_code: int | None = None
    last_stats: SandboxStats | None = None


def no_capacity(exc: AllocationFailed) -> ResourceExhausted:
    return ResourceExhausted(
        str(exc),
        reason="NO_CAPACITY",
        metadata={
            "resource": exc.slot,
            "requested": str(exc.requested),
            "available": str(exc.free),
        },
    )


def validate_creation(configs: list[agent_pb2.KernelCreationConfig]) -> None:
    violations = []
    seen: set[str] = set()
    for index, config in enumerate(configs):
        where = f"kernels[{index}]"
        try:
            uuid.UUID(config.kernel_id)
        except ValueError:
            violations.append(FieldViolation(f"{where}.kernel_id", "must be a UUID"))
        if config.kernel_id in seen:
            violations.append(FieldViolation(f"{where}.kernel_id", "appears twice"))
        seen.add(config.kernel_id)
        if not config.image.canonical:
            violations.append(FieldViolation(f"{where}.image.canonical", "is required"))
        try:
            Slots.from_wire(config.resource_slots.slots)
        except SlotParseError as exc:
            violations.append(FieldViolation(f"{where}.resource_slots", str(exc)))
        violations += check_mounts(config, where)
    if not configs:
        violations.append(FieldViolation("kernels", "at least one kernel is required"))
    if violations:
        raise InvalidArgument(violations)


class KernelManager:
    def __init__(self, ctx: AgentContext, runner: RunnerSetup) -> None:
        self.ctx = ctx
        self.runner = runner
        self.images = ImageService(ctx.runtime, ctx.outbox)
        self.records: dict[str, KernelRecord] = {}
        self.creating: dict[str, asyncio.Task[None]] = {}
        self.watchers: dict[str, asyncio.Task[None]] = {}
        self.locks: defaultdict[str, asyncio.Lock] = defaultdict(asyncio.Lock)
        self.background: set[asyncio.Task[Any]] = set()
        # kernel_id -> the run in progress.
        self.active_runs: dict[str, RunHandle] = {}

    @property
    def kernel_host(self) -> str:
        return self.ctx.config.public_host

    def spawn(self, work: Coroutine[Any, Any, Any]) -> asyncio.Task[Any]:
        task = asyncio.create_task(work)
        self.background.add(task)
        task.add_done_callback(self.background.discard)
        return task

    def live(self) -> list[KernelRecord]:
        return [r for r in self.records.values() if not r.is_terminal]

    def get(self, kernel_id: str) -> KernelRecord:
        record = self.records.get(kernel_id)
        if record is None:
            raise NotFound(
                f"kernel {kernel_id} is not known here", metadata={"kernel_id": kernel_id}
            )
        return record

    def require_running(self, kernel_id: str) -> KernelRecord:
        record = self.get(kernel_id)
        if record.status != KS.KERNEL_STATUS_RUNNING:
            raise FailedPrecondition(
                f"kernel {kernel_id} is {KS.Name(record.status)}",  # type: ignore[arg-type]
                reason="SESSION_NOT_READY",
                metadata={"status": KS.Name(record.status)},  # type: ignore[arg-type]
            )
        return record

    def socket_path(self, kernel_id: str) -> Path:
        return self.ctx.run_dir(kernel_id) / SOCKET_FILE

    def transition(
        self,
        record: KernelRecord,
        status: int,
        event: int = 0,
        *,
        reason: int = 0,
        message: str = "",
    ) -> None:
        """Save the new state, then report it (KernelEvent `event`, if any)."""
        record.status = status
        record.status_reason = reason
        record.status_message = message
        if status in (KS.KERNEL_STATUS_TERMINATED, KS.KERNEL_STATUS_CANCELLED):
            record.terminated_at = datetime.now(UTC)
        self.ctx.store.save(record)
        if not event:
            return
        kernel_event = reg.KernelEvent(
            kernel_id=record.kernel_id,
            session_id=record.session_id,
            type=event,  # type: ignore[arg-type]
            reason=reason,  # type: ignore[arg-type]
            message=message,
        )
        if event == reg.KERNEL_EVENT_TYPE_TERMINATED and record.exit_code is not None:
            kernel_event.exit_code = record.exit_code
        if event in (reg.KERNEL_EVENT_TYPE_STARTED, reg.KERNEL_EVENT_TYPE_RESTARTED):
            kernel_event.runtime.CopyFrom(record.runtime_info(self.kernel_host))
        self.ctx.outbox.kernel_event(kernel_event)

    async def create_kernels(
        self,
        cluster: agent_pb2.ClusterInfo,
        configs: list[agent_pb2.KernelCreationConfig],
    ) -> list[CreateOutcome]:
        from bai.agent.kernels.creation import prepare_and_start

        validate_creation(configs)
        self.forget_terminated()
        outcomes = []
        for config in configs:
            known = self.records.get(config.kernel_id)
            if known is not None:
                outcomes.append(CreateOutcome(config.kernel_id, record=known))
                continue
            if self.ctx.shutting_down:
                raise Unavailable("the agent is shutting down", reason="SHUTTING_DOWN")
            unmountable = await asyncio.to_thread(missing_source, config)
            if unmountable is not None:
                outcomes.append(CreateOutcome(config.kernel_id, error=unmountable))
                continue
            try:
                allocations = self.ctx.allocator.allocate(
                    config.kernel_id, Slots.from_wire(config.resource_slots.slots)
                )
            except AllocationFailed as exc:
                outcomes.append(CreateOutcome(config.kernel_id, error=no_capacity(exc)))
                continue
            except InvalidRequest as exc:
                bad = InvalidArgument.field("resource_slots", str(exc))
                outcomes.append(CreateOutcome(config.kernel_id, error=bad))
                continue
            record = KernelRecord(config=config, cluster=cluster, allocations=allocations)
            self.records[config.kernel_id] = record
            self.transition(record, KS.KERNEL_STATUS_PREPARING, reg.KERNEL_EVENT_TYPE_PREPARING)
            task = asyncio.create_task(prepare_and_start(self, record))
            self.creating[config.kernel_id] = task
            task.add_done_callback(functools.partial(self._created, config.kernel_id))
            outcomes.append(CreateOutcome(config.kernel_id, record=record))
        return outcomes

    def _created(self, kernel_id: str, task: asyncio.Task[None]) -> None:
        if self.creating.get(kernel_id) is task:
            del self.creating[kernel_id]

    def forget_terminated(self, keep: timedelta = KEEP_TERMINATED) -> None:
        """Terminated kernels answer GetKernel for a while, then are forgotten."""
        horizon = datetime.now(UTC) - keep
        for record in list(self.records.values()):
            if record.is_terminal and record.terminated_at and record.terminated_at < horizon:
                del self.records[record.kernel_id]
                self.locks.pop(record.kernel_id, None)
                self.ctx.store.delete(record.kernel_id)

    def release(self, record: KernelRecord) -> None:
        self.ctx.allocator.release(record.kernel_id)
        self.ctx.ports.release_owner(record.kernel_id)

    async def remove_files(self, record: KernelRecord) -> None:
        for path in (self.ctx.scratch_dir(record.kernel_id), self.ctx.run_dir(record.kernel_id)):
            await asyncio.to_thread(shutil.rmtree, path, True)

    async def remove_sandbox(self, record: KernelRecord) -> None:
        ids = {record.sandbox_id} if record.sandbox_id else set()
        if not ids:
            # A start cancelled mid-way may have created one without us learning its id.
            for state in await self.ctx.runtime.list_sandboxes(self.ctx.agent_id):
                if state.kernel_id == record.kernel_id:
                    ids.add(state.sandbox_id)
        for sandbox_id in ids:
            with suppress(SandboxNotFound):
                await self.ctx.runtime.stop(sandbox_id, 0)
            with suppress(SandboxNotFound):
                await self.ctx.runtime.remove(sandbox_id)

    async def cancel_creation(self, record: KernelRecord, reason: int, message: str) -> None:
        """Give up a kernel before it ran: undo what was done, report CANCELLED."""
        with suppress(RuntimeFailure):
            await self.remove_sandbox(record)
        self.release(record)
        await self.remove_files(record)
        self.transition(
            record,
            KS.KERNEL_STATUS_CANCELLED,
            reg.KERNEL_EVENT_TYPE_CANCELLED,
            reason=reason,
            message=message,
        )

    def start_watcher(self, record: KernelRecord) -> None:
        self.watchers[record.kernel_id] = asyncio.create_task(self._watch(record))

    async def _watch(self, record: KernelRecord) -> None:
        sandbox_id = record.sandbox_id
        try:
            state = await self.ctx.runtime.wait(sandbox_id)
        except SandboxNotFound:
            state = SandboxState(sandbox_id, record.kernel_id, {}, running=False)
        except RuntimeFailure as exc:
            log.error(
                "cannot watch kernel", extra={"kernel_id": record.kernel_id, "error": str(exc)}
            )
            return
        async with self.locks[record.kernel_id]:
            if record.status != KS.KERNEL_STATUS_RUNNING or record.sandbox_id != sandbox_id:
                return
            self.watchers.pop(record.kernel_id, None)
            await self.finish_exit(record, state)

    async def finish_exit(self, record: KernelRecord, state: SandboxState) -> None:
        """The sandbox ended on its own: report why, clean up, TERMINATED."""
        batch = is_batch(record)
        batch_result = read_batch_result(self.ctx.run_dir(record.kernel_id)) if batch else None
        verdict: ExitVerdict = classify_exit(state, batch, batch_result)
        record.exit_code = verdict.exit_code
        if batch:
            result = reg.BatchResult(
                session_id=record.session_id,
                kernel_id=record.kernel_id,
                result=verdict.session_result,  # type: ignore[arg-type]
                exit_code=verdict.exit_code if verdict.exit_code is not None else -1,
                reason=verdict.reason,  # type: ignore[arg-type]
            )
            result.time.GetCurrentTime()
            self.ctx.outbox.batch_result(result)
        with suppress(RuntimeFailure):
            await self.ctx.runtime.remove(record.sandbox_id)
        self.release(record)
        await self.remove_files(record)
        self.transition(
            record,
            KS.KERNEL_STATUS_TERMINATED,
            reg.KERNEL_EVENT_TYPE_TERMINATED,
            reason=verdict.reason,
            message=verdict.message,
        )

    async def destroy(
        self, kernel_id: str, reason: int, forced: bool, grace_seconds: float | None
    ) -> DestroyOutcome:
        record = self.records.get(kernel_id)
        if record is None:
            return DestroyOutcome(found=False)
        async with self.locks[kernel_id]:
            if record.is_terminal:
                return DestroyOutcome(found=False, exit_code=record.exit_code)
            reason = reason or (
                LR.LIFECYCLE_REASON_FORCE_TERMINATED
                if forced
                else LR.LIFECYCLE_REASON_USER_REQUESTED
            )
            self.transition(
                record,
                KS.KERNEL_STATUS_TERMINATING,
                reg.KERNEL_EVENT_TYPE_TERMINATING,
                reason=reason,
            )
            for task in (self.creating.pop(kernel_id, None), self.watchers.pop(kernel_id, None)):
                if task is not None and task is not asyncio.current_task():
                    task.cancel()
                    with suppress(asyncio.CancelledError, Exception):
                        await task
            last_stats = None
            grace = 0.0 if forced else (DEFAULT_GRACE if grace_seconds is None else grace_seconds)
            try:
                if record.sandbox_id:
                    with suppress(RuntimeFailure):
                        last_stats = await self.ctx.runtime.stats(record.sandbox_id)
                    with suppress(SandboxNotFound):
                        final = await self.ctx.runtime.stop(record.sandbox_id, grace)
                        record.exit_code = final.exit_code
                await self.remove_sandbox(record)
            except RuntimeFailure as exc:
                # Stays TERMINATING: the manager's retry finishes the job.
                raise Unavailable(f"container runtime: {exc}") from exc
            self.release(record)
            await self.remove_files(record)
            self.transition(
                record, KS.KERNEL_STATUS_TERMINATED, reg.KERNEL_EVENT_TYPE_TERMINATED, reason=reason
            )
            return DestroyOutcome(True, record.exit_code, last_stats)

    async def close(self) -> None:
        """Stop watching (the agent exits; kernels keep running)."""
        tasks = [*self.creating.values(), *self.watchers.values(), *self.background]
        for task in tasks:
            task.cancel()
        for task in tasks:
            with suppress(asyncio.CancelledError, Exception):
                await task
