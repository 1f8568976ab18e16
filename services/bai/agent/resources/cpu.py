"""The CPU plugin: slot "cpu" in cores, allocated by amount, optionally pinned.

Capacity is a configured share (several agents on one host each take part of
it, e.g. cpu=1 of 2) or the usable cores minus those reserved for the host.
Any amount may be asked for, fractions included (a CFS quota in the sandbox).
With pinning on, a whole-number request is also bound to that many cores,
the least loaded first; the allocation names them as one DeviceShare per core
so that the runtime can set the sandbox's cpuset (`cpuset_of`).
"""

from __future__ import annotations

from decimal import Decimal

from bai.agent.resources.hardware import read_cpu_model, usable_cores
from bai.agent.resources.plugin import (
    Allocation,
    AllocationFailed,
    Device,
    DeviceSample,
    DeviceShare,
    InvalidRequest,
    PluginStatus,
    SlotInfo,
)

SLOT = "cpu"
ZERO = Decimal(0)
ONE = Decimal(1)


class CpuPlugin:
    key = "cpu"

    def __init__(
        self,
        *,
        share: Decimal | None = None,
        reserved: Decimal = ZERO,
        cores: list[int] | None = None,
        pinning: bool = False,
    ) -> None:
        """`cores` are the core ids this agent may pin to (default: the usable ones);
        agents sharing a host should be given disjoint lists when pinning."""
        self._cores = sorted(cores) if cores is not None else usable_cores()
        if share is not None:
            self._capacity = Decimal(share)
        else:
            self._capacity = max(Decimal(len(self._cores)) - reserved, ZERO)
        self._pinning = pinning
        self._model = read_cpu_model()
        self._held: dict[str, Allocation] = {}

    def slot_infos(self) -> list[SlotInfo]:
        return [SlotInfo(SLOT, "count", "Core")]

    def devices(self) -> list[Device]:
        return [
            Device(plugin=self.key, device_id=str(core), model_name=self._model)
            for core in self._cores
        ]

    def capacity(self) -> dict[str, Decimal]:
        return {SLOT: self._capacity}

    def status(self) -> PluginStatus:
        return PluginStatus(
            healthy=True,
            state="healthy",
            metadata={"cores": str(len(self._cores)), "pinning": str(self._pinning).lower()},
        )

    def free(self) -> dict[str, Decimal]:
        used = sum((held.slots.get(SLOT, ZERO) for held in self._held.values()), ZERO)
        return {SLOT: self._capacity - used}

    def core_load(self) -> dict[str, int]:
        """How many kernels are pinned to each core."""
        load = {str(core): 0 for core in self._cores}
        for held in self._held.values():
            for share in held.shares:
                load[share.device_id] = load.get(share.device_id, 0) + 1
        return load

    def allocate(self, kernel_id: str, requested: dict[str, Decimal]) -> Allocation:
        amount = requested.get(SLOT, ZERO)
        if amount < 0:
            raise InvalidRequest(SLOT, amount, "negative")
        if kernel_id in self._held:
            raise InvalidRequest(SLOT, amount, f"kernel {kernel_id} already holds cores")
        available = self.free()[SLOT]
        if amount > available:
            raise AllocationFailed(SLOT, amount, available)
        shares: tuple[DeviceShare, ...] = ()
        if self._pinning and amount > 0 and amount == amount.to_integral_value():
            shares = tuple(
                DeviceShare(device_id=core, slot=SLOT, amount=ONE)
                for core in least_loaded(self.core_load(), int(amount))
            )
        allocation = Allocation(plugin=self.key, slots={SLOT: amount}, shares=shares)
        self._held[kernel_id] = allocation
        return allocation

    def restore(self, kernel_id: str, allocation: Allocation) -> None:
        # The kernel is already running: take its cores back even past capacity.
        self._held.setdefault(kernel_id, allocation)

    def release(self, kernel_id: str) -> None:
        self._held.pop(kernel_id, None)

    def sample(self, device_ids: list[str] | None = None) -> list[DeviceSample]:
        return []


def least_loaded(load: dict[str, int], count: int) -> list[str]:
    """`count` cores with the fewest kernels pinned, lower core ids on ties (all of
    them when an overcommitted share asks for more cores than there are)."""
    ranked = sorted(load, key=lambda core: (load[core], int(core)))
    return sorted(ranked[:count], key=int)


def cpuset_of(allocation: Allocation) -> str:
    """The cores an allocation is pinned to, as a cpuset list ("0,3"); "" when unpinned."""
    cores = sorted({int(share.device_id) for share in allocation.shares if share.slot == SLOT})
    return ",".join(str(core) for core in cores)
