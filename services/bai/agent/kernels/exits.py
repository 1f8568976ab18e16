"""Why a kernel's sandbox ended, decided from its final state (pure)."""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

from bai.agent.runner.layout import BATCH_RESULT_FILE
from bai.agent.runtime.base import SandboxState
from bai.api.common.v1 import session_pb2

LR = session_pb2.LifecycleReason

_BATCH_REASONS = {
    "finished": LR.LIFECYCLE_REASON_TASK_FINISHED,
    "failed": LR.LIFECYCLE_REASON_TASK_FAILED,
    "timeout": LR.LIFECYCLE_REASON_TASK_TIMEOUT,
}


@dataclass(frozen=True)
class ExitVerdict:
    reason: int
    message: str
    exit_code: int | None
    # Set for batch kernels: SUCCESS or FAILURE.
    session_result: int = 0


def read_batch_result(run_dir: Path) -> dict[str, object] | None:
    try:
        raw = json.loads((run_dir / BATCH_RESULT_FILE).read_text("utf-8"))
    except (OSError, ValueError):
        return None
    return raw if isinstance(raw, dict) else None


def classify_exit(
    state: SandboxState, batch: bool, batch_result: dict[str, object] | None
) -> ExitVerdict:
    exit_code = state.exit_code
    if state.oom_killed:
        verdict = ExitVerdict(LR.LIFECYCLE_REASON_OUT_OF_MEMORY, "out of memory", exit_code)
        if batch:
            return ExitVerdict(
                verdict.reason, verdict.message, exit_code, session_pb2.SESSION_RESULT_FAILURE
            )
        return verdict
    if not batch:
        return ExitVerdict(LR.LIFECYCLE_REASON_SELF_TERMINATED, "the kernel exited", exit_code)
    if batch_result is not None:
        code = batch_result.get("exit_code")
        if isinstance(code, int):
            exit_code = code
        reason = _BATCH_REASONS.get(str(batch_result.get("reason", "")))
    else:
        reason = None
    if reason is None:
        reason = (
            LR.LIFECYCLE_REASON_TASK_FINISHED if exit_code == 0 else LR.LIFECYCLE_REASON_TASK_FAILED
        )
    success = reason == LR.LIFECYCLE_REASON_TASK_FINISHED and exit_code == 0
    result = session_pb2.SESSION_RESULT_SUCCESS if success else session_pb2.SESSION_RESULT_FAILURE
    message = {
        LR.LIFECYCLE_REASON_TASK_FINISHED: "the batch task finished",
        LR.LIFECYCLE_REASON_TASK_FAILED: "the batch task failed",
        LR.LIFECYCLE_REASON_TASK_TIMEOUT: "the batch task timed out",
    }[reason]
    return ExitVerdict(reason, message, exit_code, result)
