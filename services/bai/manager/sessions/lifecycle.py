"""The session and kernel state machine, as pure functions over status names.

Kernels move forward only (agent events are delivered at least once and may
arrive late): an event is applied when it moves the kernel to a later stage,
except a restart (RUNNING <-> RESTARTING). Terminal statuses are final. A
session's status follows from its kernels' (`derive_session_status`), except
for the steps the manager itself takes (PENDING -> SCHEDULED by the scheduler,
SCHEDULED -> PREPARING by the dispatcher, PENDING -> CANCELLED on destroy).

Every transitional status has a timeout and a retry budget
(`TRANSITION_POLICIES`): the sweeper retries the step that should have moved
the session on, and gives up with reason "hang-timeout" when the budget is
spent. Nothing stays stuck.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from enum import Enum
from typing import Any

SESSION_TERMINAL = frozenset({"TERMINATED", "CANCELLED", "ERROR"})
KERNEL_TERMINAL = frozenset({"TERMINATED", "CANCELLED", "ERROR"})
# Sessions holding slots on agents (occupied_slots counts them).
SESSION_ALLOCATED = frozenset(
    {
        "SCHEDULED",
        "PREPARING",
        "PULLING",
        "PREPARED",
        "CREATING",
        "RUNNING",
        "RESTARTING",
        "RUNNING_DEGRADED",
        "TERMINATING",
    }
)
SESSION_LIVE = SESSION_ALLOCATED | {"PENDING"}
SESSION_BEFORE_RUNNING = frozenset(
    {"PENDING", "SCHEDULED", "PREPARING", "PULLING", "PREPARED", "CREATING"}
)

_KERNEL_RANK = {
    "PENDING": 0,
    "RESERVED": 0,
    "SCHEDULED": 1,
    "PREPARING": 2,
    "BUILDING": 3,
    "PULLING": 3,
    "PREPARED": 4,
    "CREATING": 5,
    "RUNNING": 6,
    "RESTARTING": 6,
    "RESIZING": 6,
    "SUSPENDED": 6,
    "TERMINATING": 7,
    "TERMINATED": 8,
    "CANCELLED": 8,
    "ERROR": 8,
}

# Agent registry KernelEventType names -> kernel status.
KERNEL_EVENT_STATUS = {
    "PREPARING": "PREPARING",
    "PULLING": "PULLING",
    "CREATING": "CREATING",
    "STARTED": "RUNNING",
    "CANCELLED": "CANCELLED",
    "TERMINATING": "TERMINATING",
    "TERMINATED": "TERMINATED",
    "RESTARTED": "RUNNING",
}


# Reasons for which a kernel that ended is an error, not a normal end: the
# user's work was killed by the platform (upstream reports OOM kernels so too).
ERROR_END_REASONS = frozenset({"out-of-memory"})


def kernel_event_status(kind: str, reason: str) -> str | None:
    """The kernel status an agent's event means; None for events without one."""
    status = KERNEL_EVENT_STATUS.get(kind)
    if status == "TERMINATED" and reason in ERROR_END_REASONS:
        return "ERROR"
    return status


def kernel_transition_allowed(current: str, new: str) -> bool:
    """May a kernel in `current` move to `new`? (Duplicates and late events: no.)"""
    if current in KERNEL_TERMINAL or current == new:
        return False
    if {current, new} == {"RUNNING", "RESTARTING"}:
        return True
    return _KERNEL_RANK.get(new, -1) > _KERNEL_RANK.get(current, -1)


def derive_session_status(kernel_statuses: Sequence[str], was_running: bool) -> str:
    """The session status its kernels imply.

    All terminal: ERROR if any kernel is ERROR; CANCELLED if the session never
    ran; else TERMINATED. Some terminal while others run: RUNNING_DEGRADED.
    Otherwise the least advanced live kernel decides (a session is RUNNING only
    when every kernel is).
    """
    if not kernel_statuses:
        return "PENDING"
    live = [k for k in kernel_statuses if k not in KERNEL_TERMINAL]
    if not live:
        if "ERROR" in kernel_statuses:
            return "ERROR"
        if not was_running and all(k == "CANCELLED" for k in kernel_statuses):
            return "CANCELLED"
        return "TERMINATED" if was_running else "CANCELLED"
    if any(k == "TERMINATING" for k in live):
        return "TERMINATING"
    if any(k == "RESTARTING" for k in live):
        return "RESTARTING"
    if all(k == "RUNNING" for k in live):
        return "RUNNING" if len(live) == len(kernel_statuses) else "RUNNING_DEGRADED"
    least = min(live, key=lambda k: _KERNEL_RANK.get(k, 0))
    return {"PENDING": "SCHEDULED", "RESERVED": "SCHEDULED", "BUILDING": "PULLING"}.get(
        least, least
    )


def batch_result(exit_code: int | None, reason: str) -> str:
    """ "success" only for a batch task that exited 0 ("task-finished")."""
    if reason == "task-finished" and exit_code == 0:
        return "success"
    return "failure"


def history_entry(
    status: str, time: datetime, reason: str = "", message: str = ""
) -> dict[str, Any]:
    return {"status": status, "time": time.isoformat(), "reason": reason, "message": message}


def appended(history: Iterable[dict[str, Any]], entry: dict[str, Any]) -> list[dict[str, Any]]:
    """A new list (JSONB columns must be reassigned, not mutated, to be saved)."""
    return [*history, entry]


class TimeoutAction(Enum):
    WAIT = "wait"
    RETRY = "retry"
    GIVE_UP = "give-up"


@dataclass(frozen=True)
class TransitionPolicy:
    timeout: timedelta
    retries: int
    # Status and reason when the budget is spent.
    give_up_status: str
    give_up_reason: str = "hang-timeout"


TRANSITION_POLICIES: dict[str, TransitionPolicy] = {
    # The dispatcher re-sends CreateKernels (idempotent per kernel id).
    "SCHEDULED": TransitionPolicy(timedelta(seconds=30), 3, "CANCELLED"),
    "PREPARING": TransitionPolicy(timedelta(minutes=2), 3, "CANCELLED"),
    "PULLING": TransitionPolicy(timedelta(minutes=15), 1, "CANCELLED", "image-pull-failed"),
    "PREPARED": TransitionPolicy(timedelta(minutes=2), 3, "CANCELLED"),
    "CREATING": TransitionPolicy(timedelta(minutes=2), 3, "CANCELLED"),
    # DestroyKernel is re-sent; when spent the session is closed forcibly.
    "TERMINATING": TransitionPolicy(timedelta(seconds=60), 3, "TERMINATED"),
    "RESTARTING": TransitionPolicy(timedelta(minutes=2), 1, "ERROR", "restart-timeout"),
}


def timeout_action(status: str, changed_at: datetime, retries: int, now: datetime) -> TimeoutAction:
    """What the sweeper does with a session that has been in `status` since `changed_at`.

    Each retry restarts the clock (the caller stores the new retry count and time).
    """
    policy = TRANSITION_POLICIES.get(status)
    if policy is None or now - changed_at < policy.timeout:
        return TimeoutAction.WAIT
    if retries < policy.retries:
        return TimeoutAction.RETRY
    return TimeoutAction.GIVE_UP
