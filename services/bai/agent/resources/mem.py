"""The memory plugin: slot "mem" in bytes, allocated by amount.

Capacity is a configured share (several agents on one host each take part of
it) or the host's MemTotal minus what is reserved for the host itself.
"""

from __future__ import annotations

from decimal import Decimal

from bai.agent.resources.hardware import read_mem_total
from bai.agent.resources.plugin import (
    Allocation,
    AllocationFailed,
    Device,
    DeviceSample,
    InvalidRequest,
    PluginStatus,
    SlotInfo,
)

SLOT = "mem"
ZERO = Decimal(0)


class MemPlugin:
    key = "mem"

    def __init__(
        self, *, share: int | None = None, reserved: int = 0, total: int | None = None
    ) -> None:
        """`total` defaults to MemTotal; `share`, when set, is the capacity as is."""
        host_total = read_mem_total() if total is None else total
        self._capacity = Decimal(share if share is not None else max(host_total - reserved, 0))
        self._held: dict[str, Decimal] = {}

    def slot_infos(self) -> list[SlotInfo]:
        return [SlotInfo(SLOT, "bytes", "GiB")]

    def devices(self) -> list[Device]:
        return []

    def capacity(self) -> dict[str, Decimal]:
        return {SLOT: self._capacity}

    def status(self) -> PluginStatus:
        return PluginStatus(healthy=True, state="healthy")

    def free(self) -> dict[str, Decimal]:
        return {SLOT: self._capacity - sum(self._held.values(), ZERO)}

    def allocate(self, kernel_id: str, requested: dict[str, Decimal]) -> Allocation:
        amount = requested.get(SLOT, ZERO)
        if amount < 0:
            raise InvalidRequest(SLOT, amount, "negative")
        if amount != amount.to_integral_value():
            raise InvalidRequest(SLOT, amount, "not a whole number of bytes")
        if kernel_id in self._held:
            raise InvalidRequest(SLOT, amount, f"kernel {kernel_id} already holds memory")
        available = self.free()[SLOT]
        if amount > available:
            raise AllocationFailed(SLOT, amount, available)
        self._held[kernel_id] = amount
        return Allocation(plugin=self.key, slots={SLOT: amount})

    def restore(self, kernel_id: str, allocation: Allocation) -> None:
        # The kernel is already running: take its memory back even past capacity.
        self._held.setdefault(kernel_id, allocation.slots.get(SLOT, ZERO))

    def release(self, kernel_id: str) -> None:
        self._held.pop(kernel_id, None)

    def sample(self, device_ids: list[str] | None = None) -> list[DeviceSample]:
        return []
