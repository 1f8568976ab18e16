"""Conversions between proto enums and the strings stored in the database.

One table per enum, both directions, so that servicers, the event feed and
the registry agree on every spelling (see the module doc of
bai.manager.db.compute for the conventions).
"""

from __future__ import annotations

from bai.api.common.v1 import session_pb2 as s

SESSION_STATUS = {
    name.removeprefix("SESSION_STATUS_"): value
    for name, value in s.SessionStatus.items()
    if value != s.SESSION_STATUS_UNSPECIFIED
}
KERNEL_STATUS = {
    name.removeprefix("KERNEL_STATUS_"): value
    for name, value in s.KernelStatus.items()
    if value != s.KERNEL_STATUS_UNSPECIFIED
}
_SESSION_STATUS_NAME: dict[int, str] = {int(v): k for k, v in SESSION_STATUS.items()}
_KERNEL_STATUS_NAME: dict[int, str] = {int(v): k for k, v in KERNEL_STATUS.items()}

SESSION_TYPES = {
    "interactive": s.SESSION_TYPE_INTERACTIVE,
    "batch": s.SESSION_TYPE_BATCH,
    "inference": s.SESSION_TYPE_INFERENCE,
    "system": s.SESSION_TYPE_SYSTEM,
}
_SESSION_TYPE_NAME: dict[int, str] = {int(v): k for k, v in SESSION_TYPES.items()}

CLUSTER_MODES = {
    "single-node": s.CLUSTER_MODE_SINGLE_NODE,
    "multi-node": s.CLUSTER_MODE_MULTI_NODE,
}
_CLUSTER_MODE_NAME: dict[int, str] = {int(v): k for k, v in CLUSTER_MODES.items()}

RESULTS = {
    "undefined": s.SESSION_RESULT_UNSPECIFIED,
    "success": s.SESSION_RESULT_SUCCESS,
    "failure": s.SESSION_RESULT_FAILURE,
}
_RESULT_NAME: dict[int, str] = {int(v): k for k, v in RESULTS.items()}


def session_status_name(value: int) -> str:
    return _SESSION_STATUS_NAME[value]


def session_status_value(name: str) -> int:
    return SESSION_STATUS.get(name, s.SESSION_STATUS_UNSPECIFIED)


def kernel_status_name(value: int) -> str:
    return _KERNEL_STATUS_NAME[value]


def kernel_status_value(name: str) -> int:
    return KERNEL_STATUS.get(name, s.KERNEL_STATUS_UNSPECIFIED)


def session_type_name(value: int) -> str:
    """UNSPECIFIED is INTERACTIVE, as CreateSession documents."""
    return _SESSION_TYPE_NAME.get(value, "interactive")


def session_type_value(name: str) -> int:
    return SESSION_TYPES.get(name, s.SESSION_TYPE_UNSPECIFIED)


def cluster_mode_name(value: int) -> str:
    return _CLUSTER_MODE_NAME.get(value, "single-node")


def cluster_mode_value(name: str) -> int:
    return CLUSTER_MODES.get(name, s.CLUSTER_MODE_UNSPECIFIED)


def result_name(value: int) -> str:
    return _RESULT_NAME.get(value, "undefined")


def result_value(name: str) -> int:
    return RESULTS.get(name, s.SESSION_RESULT_UNSPECIFIED)


def reason_name(value: int) -> str:
    """LIFECYCLE_REASON_AGENT_LOST -> "agent-lost"; UNSPECIFIED -> ""."""
    if value == s.LIFECYCLE_REASON_UNSPECIFIED:
        return ""
    full = s.LifecycleReason.Name(s.LifecycleReason.ValueType(value))
    return full.removeprefix("LIFECYCLE_REASON_").lower().replace("_", "-")


def reason_value(name: str) -> int:
    if not name:
        return s.LIFECYCLE_REASON_UNSPECIFIED
    full = "LIFECYCLE_REASON_" + name.upper().replace("-", "_")
    try:
        return s.LifecycleReason.Value(full)
    except ValueError:
        return s.LIFECYCLE_REASON_UNSPECIFIED
