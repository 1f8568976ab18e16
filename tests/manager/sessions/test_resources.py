"""Pure checks of what a new session asks for (no database)."""

from __future__ import annotations

from decimal import Decimal

import pytest

from bai.common.errors import InvalidArgument, ResourceExhausted
from bai.common.image_labels import readable_resource_bounds
from bai.common.slots import Slots
from bai.manager.sessions.resources import (
    AgentCapacity,
    exceeds,
    kernel_slots,
    require_some_capacity,
)

LABELS = {
    "ai.backend.resource.min.cpu": "1",
    "ai.backend.resource.min.mem": "256m",
    "ai.backend.resource.max.cpu": "4",
    "ai.backend.resource.min.cuda.device": "1",
    "ai.backend.resource.min.weird": "lots",
    "ai.backend.service-ports": "jupyter:http:8080",
}


def test_image_bounds_read_sizes_and_skip_unreadable_labels() -> None:
    low, high = readable_resource_bounds(LABELS)
    assert low == {"cpu": 1, "mem": 256 << 20, "cuda.device": 1}
    assert high == {"cpu": 4}


@pytest.mark.parametrize(
    ("requested", "known", "expected"),
    [
        ({}, set(), {"cpu": "1", "mem": str(256 << 20)}),
        ({"cpu": Decimal(2)}, set(), {"cpu": "2", "mem": str(256 << 20)}),
        # The image's device minimum applies where agents offer the slot.
        ({}, {"cuda.device"}, {"cpu": "1", "mem": str(256 << 20), "cuda.device": "1"}),
    ],
)
def test_unspecified_slots_take_the_image_minimum(
    requested: dict[str, Decimal], known: set[str], expected: dict[str, str]
) -> None:
    assert kernel_slots(requested, LABELS, known).to_wire() == dict(sorted(expected.items()))


@pytest.mark.parametrize(
    ("requested", "reason", "slot"),
    [
        ({"cpu": Decimal(5)}, "RESOURCE_REQUEST_OUT_OF_RANGE", "cpu"),
        ({"cpu": Decimal("0.5")}, "RESOURCE_REQUEST_OUT_OF_RANGE", "cpu"),
        ({"mem": Decimal(1024)}, "RESOURCE_REQUEST_OUT_OF_RANGE", "mem"),
        ({"tpu": Decimal(1)}, "UNKNOWN_RESOURCE_SLOT", "tpu"),
    ],
)
def test_out_of_range_and_unknown_slots(
    requested: dict[str, Decimal], reason: str, slot: str
) -> None:
    with pytest.raises(InvalidArgument) as info:
        kernel_slots(requested, LABELS, set())
    assert info.value.reason == reason
    assert info.value.metadata["slot"] == slot


def test_capacity_is_checked_against_live_agents_only() -> None:
    need = Slots({"cpu": 2, "mem": 1 << 30})
    small = AgentCapacity("a1", "x86_64", Slots({"cpu": 1, "mem": 8 << 30}))
    arm = AgentCapacity("a2", "aarch64", Slots({"cpu": 64, "mem": 64 << 30}))
    require_some_capacity(need, 1, True, "x86_64", [])
    require_some_capacity(need, 1, True, "aarch64", [small, arm])
    with pytest.raises(ResourceExhausted) as info:
        require_some_capacity(need, 1, True, "x86_64", [small, arm])
    assert info.value.metadata == {"resource": "cpu", "requested": "2", "available": "1"}
    big = AgentCapacity("a3", "x86_64", Slots({"cpu": 3, "mem": 8 << 30}))
    require_some_capacity(need, 1, True, "x86_64", [big])
    # Single-node: all kernels on one agent; multi-node: one kernel per agent.
    with pytest.raises(ResourceExhausted):
        require_some_capacity(need, 2, True, "x86_64", [big])
    require_some_capacity(need, 2, False, "x86_64", [big])


def test_exceeds_names_the_first_slot_over_the_limit() -> None:
    assert exceeds({"cpu": "4"}, Slots({"cpu": 4, "mem": 10})) is None
    assert exceeds({"cpu": "4", "mem": "5"}, Slots({"cpu": 5, "mem": 10})) == "cpu"
