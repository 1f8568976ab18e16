"""The CPU and memory plugins: capacity, amounts, fractions and core pinning."""

from __future__ import annotations

import os
from decimal import Decimal

import pytest

from bai.agent.resources.cpu import CpuPlugin, cpuset_of, least_loaded
from bai.agent.resources.hardware import read_mem_total
from bai.agent.resources.mem import MemPlugin
from bai.agent.resources.plugin import AllocationFailed, DeviceShare, InvalidRequest

GIB = 1024**3


def cpu(amount: str) -> dict[str, Decimal]:
    return {"cpu": Decimal(amount)}


def test_cpu_capacity_is_the_usable_cores_minus_reserved_or_the_share() -> None:
    usable = len(os.sched_getaffinity(0))
    assert CpuPlugin().capacity() == {"cpu": usable}
    assert CpuPlugin(cores=[0, 1, 2, 3], reserved=Decimal(1)).capacity() == {"cpu": 3}
    assert CpuPlugin(cores=[0], reserved=Decimal(2)).capacity() == {"cpu": 0}
    assert CpuPlugin(cores=[0, 1], share=Decimal(1)).capacity() == {"cpu": 1}
    assert [d.device_id for d in CpuPlugin(cores=[3, 1]).devices()] == ["1", "3"]


@pytest.mark.parametrize(
    ("steps", "free_after"),
    [
        ([("k1", "0.5"), ("k2", "1"), ("k3", "0.25")], "0.25"),
        ([("k1", "2")], "0"),
        ([("k1", "1.5"), ("k2", "0.5")], "0"),
    ],
)
def test_cpu_allocates_amounts_including_fractions(
    steps: list[tuple[str, str]], free_after: str
) -> None:
    plugin = CpuPlugin(cores=[0, 1])
    for kernel_id, amount in steps:
        allocation = plugin.allocate(kernel_id, cpu(amount))
        assert allocation.slots == cpu(amount)
        assert allocation.shares == ()  # pinning is off
    assert plugin.free() == cpu(free_after)


def test_cpu_exhaustion_names_what_is_left() -> None:
    plugin = CpuPlugin(cores=[0, 1], share=Decimal("1.5"))
    plugin.allocate("k1", cpu("1"))
    with pytest.raises(AllocationFailed) as failure:
        plugin.allocate("k2", cpu("0.75"))
    assert (failure.value.slot, failure.value.requested, failure.value.free) == (
        "cpu",
        Decimal("0.75"),
        Decimal("0.5"),
    )
    plugin.release("k1")
    plugin.release("k1")
    assert plugin.free() == cpu("1.5")


def test_cpu_pins_whole_requests_to_the_least_loaded_cores() -> None:
    plugin = CpuPlugin(cores=[0, 1, 2, 3], pinning=True)
    first = plugin.allocate("k1", cpu("2"))
    assert first.shares == (
        DeviceShare("0", "cpu", Decimal(1)),
        DeviceShare("1", "cpu", Decimal(1)),
    )
    assert cpuset_of(first) == "0,1"
    assert plugin.allocate("k2", cpu("0.5")).shares == ()  # fractions float
    assert cpuset_of(plugin.allocate("k3", cpu("1"))) == "2"
    plugin.release("k1")
    assert cpuset_of(plugin.allocate("k4", cpu("2"))) == "0,1"
    assert plugin.core_load() == {"0": 1, "1": 1, "2": 1, "3": 0}


def test_least_loaded_breaks_ties_by_core_id() -> None:
    assert least_loaded({"0": 2, "1": 0, "2": 1, "3": 0}, 3) == ["1", "2", "3"]
    assert least_loaded({"0": 0}, 2) == ["0"]


def test_cpu_restore_is_idempotent_and_keeps_the_pinning() -> None:
    before = CpuPlugin(cores=[0, 1], pinning=True)
    allocation = before.allocate("k1", cpu("1"))
    after = CpuPlugin(cores=[0, 1], pinning=True)
    after.restore("k1", allocation)
    after.restore("k1", allocation)
    assert after.free() == cpu("1")
    assert cpuset_of(after.allocate("k2", cpu("1"))) == "1"


def test_cpu_rejects_negative_amounts() -> None:
    with pytest.raises(InvalidRequest):
        CpuPlugin(cores=[0]).allocate("k1", cpu("-1"))


def test_mem_capacity_is_memtotal_minus_reserved_or_the_share() -> None:
    assert MemPlugin().capacity() == {"mem": read_mem_total()}
    assert read_mem_total() > 0
    assert MemPlugin(total=8 * GIB, reserved=GIB).capacity() == {"mem": 7 * GIB}
    assert MemPlugin(total=8 * GIB, share=2 * GIB).capacity() == {"mem": 2 * GIB}


def test_mem_allocates_bytes_until_exhausted() -> None:
    plugin = MemPlugin(total=4 * GIB)
    plugin.allocate("k1", {"mem": Decimal(3 * GIB)})
    with pytest.raises(AllocationFailed) as failure:
        plugin.allocate("k2", {"mem": Decimal(2 * GIB)})
    assert (failure.value.requested, failure.value.free) == (Decimal(2 * GIB), Decimal(GIB))
    plugin.restore("k1", plugin.allocate("k3", {"mem": Decimal(GIB)}))  # known: no-op
    assert plugin.free() == {"mem": 0}
    plugin.release("k1")
    assert plugin.free() == {"mem": 3 * GIB}


@pytest.mark.parametrize("amount", ["-1", "0.5"])
def test_mem_rejects_negative_or_partial_bytes(amount: str) -> None:
    with pytest.raises(InvalidRequest):
        MemPlugin(total=GIB).allocate("k1", {"mem": Decimal(amount)})
