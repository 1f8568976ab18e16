"""NodeAllocator over real cpu/mem plugins and the CUDA plugin on fake GPUs."""

from __future__ import annotations

import json
from decimal import Decimal
from typing import Any

import pytest

from bai.agent.resources.allocator import (
    AlreadyAllocated,
    MalformedAllocation,
    NodeAllocator,
    UnknownSlot,
    from_json,
    to_json,
)
from bai.agent.resources.cpu import CpuPlugin
from bai.agent.resources.cuda import SLOT_DEVICE, SLOT_SHARES
from bai.agent.resources.mem import MemPlugin
from bai.agent.resources.plugin import AllocationFailed, InvalidRequest
from bai.common.slots import Slots
from tests.agent.resources.fakes import cuda_plugin

GIB = 1024**3


def node(gpus: int = 2) -> NodeAllocator:
    return NodeAllocator(
        [
            CpuPlugin(cores=[0, 1, 2, 3], pinning=True),
            MemPlugin(total=8 * GIB),
            cuda_plugin(gpus),
        ]
    )


def test_capacity_merges_every_plugin() -> None:
    allocator = node()
    expected = Slots({"cpu": 4, "mem": 8 * GIB, SLOT_DEVICE: 2, SLOT_SHARES: 2})
    assert allocator.capacity() == expected
    assert allocator.free() == expected
    assert allocator.occupied() == Slots()
    assert [info.name for info in allocator.slot_infos()] == [
        "cpu",
        "mem",
        SLOT_DEVICE,
        SLOT_SHARES,
    ]


def test_allocate_gives_each_plugin_its_slots() -> None:
    allocator = node()
    request = Slots({"cpu": 2, "mem": GIB, SLOT_SHARES: "0.5", SLOT_DEVICE: 0})
    allocations = allocator.allocate("k1", request)
    assert [a.plugin for a in allocations] == ["cpu", "mem", "cuda"]
    assert allocator.occupied() == request
    assert allocator.free() == Slots({"cpu": 2, "mem": 7 * GIB, SLOT_DEVICE: 1, SLOT_SHARES: "1.5"})
    assert allocator.allocations("k1") == allocations
    assert allocator.kernel_ids() == ["k1"]


def test_a_failing_plugin_rolls_back_the_others() -> None:
    allocator = node(gpus=1)
    allocator.allocate("k1", Slots({SLOT_DEVICE: 1}))
    before = allocator.free()
    with pytest.raises(AllocationFailed) as failure:
        allocator.allocate("k2", Slots({"cpu": 1, "mem": GIB, SLOT_SHARES: "0.5"}))
    assert (failure.value.slot, failure.value.requested, failure.value.free) == (
        SLOT_SHARES,
        Decimal("0.5"),
        Decimal(0),
    )
    assert allocator.free() == before
    assert allocator.allocations("k2") is None
    # Nothing of k2 stayed behind in any plugin: the same id allocates again.
    allocator.allocate("k2", Slots({"cpu": 4, "mem": 8 * GIB}))


def test_an_unknown_slot_is_named_and_takes_nothing() -> None:
    allocator = NodeAllocator([CpuPlugin(cores=[0, 1]), MemPlugin(total=GIB)])
    with pytest.raises(UnknownSlot) as failure:
        allocator.allocate("k1", Slots({"cpu": 1, SLOT_DEVICE: 1}))
    assert (failure.value.slot, failure.value.requested, failure.value.free) == (
        SLOT_DEVICE,
        Decimal(1),
        Decimal(0),
    )
    assert isinstance(failure.value, AllocationFailed)
    assert "no such slot" in str(failure.value)
    assert allocator.free() == allocator.capacity()
    # A zero amount of a slot the node lacks is no request at all.
    assert allocator.allocate("k1", Slots({"cpu": 1, SLOT_DEVICE: 0}))[0].plugin == "cpu"


def test_invalid_and_duplicate_requests() -> None:
    allocator = node()
    with pytest.raises(InvalidRequest):
        allocator.allocate("k1", Slots({"cpu": -1}))
    allocator.allocate("k1", Slots({"cpu": 1}))
    with pytest.raises(AlreadyAllocated):
        allocator.allocate("k1", Slots({"cpu": 1}))
    with pytest.raises(ValueError, match="offered by both"):
        NodeAllocator([CpuPlugin(cores=[0]), CpuPlugin(cores=[1])])


def test_release_is_idempotent() -> None:
    allocator = node()
    allocator.allocate("k1", Slots({"cpu": 1, SLOT_DEVICE: 2}))
    allocator.release("k1")
    allocator.release("k1")
    allocator.release("never-allocated")
    assert allocator.free() == allocator.capacity()
    assert allocator.occupied() == Slots()


def test_restart_restores_from_json_without_allocating_twice() -> None:
    first = node()
    held = first.allocate("k1", Slots({"cpu": 2, "mem": GIB, SLOT_DEVICE: 1, SLOT_SHARES: "0.5"}))
    stored = json.dumps([to_json(allocation) for allocation in held])

    second = node()
    loaded = [from_json(item) for item in json.loads(stored)]
    assert loaded == held
    second.restore("k1", loaded)
    second.restore("k1", loaded)
    assert second.free() == first.free()
    assert second.occupied() == first.occupied()
    with pytest.raises(AllocationFailed):
        second.allocate("k2", Slots({SLOT_DEVICE: 1}))
    second.release("k1")
    assert second.free() == second.capacity()


def test_restore_of_a_plugin_no_longer_loaded_occupies_nothing() -> None:
    held = node().allocate("k1", Slots({"cpu": 1, SLOT_DEVICE: 1}))
    cpu_only = NodeAllocator([CpuPlugin(cores=[0, 1])])
    cpu_only.restore("k1", held)
    assert cpu_only.free() == Slots({"cpu": 1})
    assert cpu_only.allocations("k1") == held


def test_json_form_is_canonical() -> None:
    (allocation,) = node().allocate("k1", Slots({SLOT_SHARES: "0.50"}))
    assert to_json(allocation) == {
        "plugin": "cuda",
        "slots": {SLOT_SHARES: "0.5"},
        "shares": [{"device_id": "GPU-0", "slot": SLOT_SHARES, "amount": "0.5"}],
        "environ": {
            "CUDA_VISIBLE_DEVICES": "GPU-0",
            "NVIDIA_VISIBLE_DEVICES": "GPU-0",
            "BAI_CUDA_SHARES": "GPU-0=0.5",
        },
        "device_paths": ["/dev/nvidia0", "/dev/nvidiactl", "/dev/nvidia-uvm"],
    }


@pytest.mark.parametrize(
    ("record", "complaint"),
    [
        ([], "an object"),
        ({"slots": {}}, "plugin"),
        ({"plugin": "cpu", "slots": {"cpu": 1}}, "slots"),
        ({"plugin": "cpu", "slots": {"cpu": "one"}}, "slots.cpu"),
        ({"plugin": "cpu", "slots": {"cpu": "NaN"}}, "slots.cpu"),
        ({"plugin": "cuda", "shares": [{"device_id": "GPU-0"}]}, "shares[0]"),
        ({"plugin": "cuda", "shares": "GPU-0"}, "shares"),
        ({"plugin": "cuda", "device_paths": [0]}, "device_paths"),
        ({"plugin": "cuda", "environ": {"A": 1}}, "environ"),
    ],
)
def test_malformed_records_are_refused(record: Any, complaint: str) -> None:
    with pytest.raises(MalformedAllocation, match=complaint.replace("[", r"\[")):
        from_json(record)
