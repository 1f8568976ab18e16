"""The pure session/kernel state machine (bai.manager.sessions.lifecycle)."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from bai.manager.sessions import names
from bai.manager.sessions.lifecycle import (
    KERNEL_EVENT_STATUS,
    KERNEL_TERMINAL,
    TRANSITION_POLICIES,
    TimeoutAction,
    appended,
    batch_result,
    derive_session_status,
    history_entry,
    kernel_event_status,
    kernel_transition_allowed,
    timeout_action,
)

NOW = datetime(2026, 1, 1, tzinfo=UTC)


@pytest.mark.parametrize(
    "current, new, allowed",
    [
        ("SCHEDULED", "PREPARING", True),
        ("PREPARING", "PULLING", True),
        ("PULLING", "CREATING", True),
        ("PREPARING", "RUNNING", True),
        ("RUNNING", "TERMINATING", True),
        ("TERMINATING", "TERMINATED", True),
        ("PENDING", "CANCELLED", True),
        ("RUNNING", "RESTARTING", True),
        ("RESTARTING", "RUNNING", True),
        # Late and duplicate events change nothing.
        ("RUNNING", "CREATING", False),
        ("RUNNING", "RUNNING", False),
        ("TERMINATING", "RUNNING", False),
        # Terminal is final, whatever comes after.
        ("TERMINATED", "RUNNING", False),
        ("CANCELLED", "TERMINATED", False),
        ("ERROR", "TERMINATED", False),
        ("TERMINATED", "TERMINATED", False),
    ],
)
def test_kernel_transition_allowed(current: str, new: str, allowed: bool) -> None:
    assert kernel_transition_allowed(current, new) is allowed


def test_kernels_never_move_backwards() -> None:
    order = ["SCHEDULED", "PREPARING", "PULLING", "CREATING", "RUNNING", "TERMINATING"]
    for i, earlier in enumerate(order):
        for later in order[i + 1 :]:
            assert kernel_transition_allowed(earlier, later)
            assert not kernel_transition_allowed(later, earlier)


@pytest.mark.parametrize(
    "kernels, was_running, expected",
    [
        ([], False, "PENDING"),
        (["RUNNING"], False, "RUNNING"),
        (["RUNNING", "RUNNING"], True, "RUNNING"),
        (["RUNNING", "CREATING"], False, "CREATING"),
        (["PREPARING", "PULLING"], False, "PREPARING"),
        (["SCHEDULED"], False, "SCHEDULED"),
        (["PENDING", "RUNNING"], False, "SCHEDULED"),
        (["BUILDING"], False, "PULLING"),
        (["RUNNING", "TERMINATING"], True, "TERMINATING"),
        (["RUNNING", "RESTARTING"], True, "RESTARTING"),
        (["RUNNING", "TERMINATED"], True, "RUNNING_DEGRADED"),
        (["TERMINATED", "TERMINATED"], True, "TERMINATED"),
        (["TERMINATED", "CANCELLED"], True, "TERMINATED"),
        (["CANCELLED", "CANCELLED"], False, "CANCELLED"),
        (["TERMINATED"], False, "CANCELLED"),
        (["ERROR", "TERMINATED"], True, "ERROR"),
    ],
)
def test_derive_session_status(kernels: list[str], was_running: bool, expected: str) -> None:
    assert derive_session_status(kernels, was_running) == expected


@pytest.mark.parametrize(
    "exit_code, reason, result",
    [
        (0, "task-finished", "success"),
        (1, "task-finished", "failure"),
        (0, "task-timeout", "failure"),
        (None, "task-cancelled", "failure"),
    ],
)
def test_batch_result(exit_code: int | None, reason: str, result: str) -> None:
    assert batch_result(exit_code, reason) == result


def test_history_entries_are_appended_to_a_new_list() -> None:
    history = [history_entry("PENDING", NOW)]
    entry = history_entry("SCHEDULED", NOW, "user-requested", "placed")
    longer = appended(history, entry)
    assert longer is not history and len(history) == 1
    assert longer[-1] == {
        "status": "SCHEDULED",
        "time": NOW.isoformat(),
        "reason": "user-requested",
        "message": "placed",
    }


def test_every_transitional_status_has_a_policy_and_gives_up_terminally() -> None:
    for status, policy in TRANSITION_POLICIES.items():
        assert policy.timeout > timedelta(0), status
        assert policy.give_up_status in KERNEL_TERMINAL, status
        assert names.reason_value(policy.give_up_reason) != 0, policy.give_up_reason


@pytest.mark.parametrize(
    "status, elapsed, retries, action",
    [
        ("SCHEDULED", timedelta(seconds=10), 0, TimeoutAction.WAIT),
        ("SCHEDULED", timedelta(seconds=31), 0, TimeoutAction.RETRY),
        ("SCHEDULED", timedelta(seconds=31), 3, TimeoutAction.GIVE_UP),
        ("PULLING", timedelta(minutes=16), 1, TimeoutAction.GIVE_UP),
        ("TERMINATING", timedelta(seconds=61), 2, TimeoutAction.RETRY),
        # Statuses without a timeout wait forever.
        ("RUNNING", timedelta(days=30), 99, TimeoutAction.WAIT),
        ("PENDING", timedelta(days=30), 99, TimeoutAction.WAIT),
    ],
)
def test_timeout_action(
    status: str, elapsed: timedelta, retries: int, action: TimeoutAction
) -> None:
    assert timeout_action(status, NOW - elapsed, retries, NOW) is action


def test_every_kernel_event_maps_to_a_known_status() -> None:
    for status in KERNEL_EVENT_STATUS.values():
        assert names.kernel_status_value(status) != 0, status


def test_reason_names_round_trip() -> None:
    for reason in ("agent-lost", "container-not-found", "user-requested", "hang-timeout"):
        assert names.reason_name(names.reason_value(reason)) == reason
    assert names.reason_value("no-such-reason") == 0
    assert names.reason_name(0) == ""


@pytest.mark.parametrize(
    "kind, reason, status",
    [
        ("TERMINATED", "out-of-memory", "ERROR"),
        ("TERMINATED", "self-terminated", "TERMINATED"),
        ("TERMINATED", "", "TERMINATED"),
        ("STARTED", "out-of-memory", "RUNNING"),
        ("CANCELLED", "out-of-memory", "CANCELLED"),
        ("NO_SUCH_EVENT", "", None),
    ],
)
def test_an_agent_event_means_a_kernel_status(kind: str, reason: str, status: str | None) -> None:
    assert kernel_event_status(kind, reason) == status
