"""The interface of a compute plugin, and the allocation records it returns.

A plugin owns some slots ("cpu"; "mem"; "cuda.device" and "cuda.shares"),
reports the node's capacity for them, and turns a kernel's requested amounts
into a concrete allocation (which cores, which GPUs and how much of each).
Allocations are plain data so that the agent can persist them with the
kernel and `restore` them after a restart without allocating twice.

Plugins never import grpc or the rest of bai (the CUDA plugin is exercised
alone on GPU machines); they use only `bai.common.slots`.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from decimal import Decimal
from typing import Literal, Protocol

SlotKind = Literal["count", "bytes", "unique"]


class AllocationFailed(Exception):
    """The request cannot be met by the free devices (NO_CAPACITY)."""

    def __init__(self, slot: str, requested: Decimal, free: Decimal) -> None:
        super().__init__(f"{slot}: requested {requested}, free {free}")
        self.slot = slot
        self.requested = requested
        self.free = free


class InvalidRequest(ValueError):
    """A requested amount no device could ever meet: negative, or a fraction of a
    whole-device slot (a bad request, not a full node)."""

    def __init__(self, slot: str, requested: Decimal, why: str) -> None:
        super().__init__(f"{slot}: requested {requested}: {why}")
        self.slot = slot
        self.requested = requested


@dataclass(frozen=True)
class SlotInfo:
    name: str
    kind: SlotKind
    display_unit: str


@dataclass(frozen=True)
class Device:
    plugin: str
    device_id: str
    model_name: str = ""
    memory_bytes: int = 0
    numa_node: int = -1
    bus_id: str = ""
    # The amount of the device's slot one device offers (1 for a whole GPU).
    capacity: Decimal = Decimal(1)
    properties: dict[str, str] = field(default_factory=dict)


@dataclass(frozen=True)
class DeviceShare:
    """Part of one device given to one kernel."""

    device_id: str
    slot: str
    amount: Decimal


@dataclass(frozen=True)
class Allocation:
    """What one plugin gave one kernel."""

    plugin: str
    slots: dict[str, Decimal]
    shares: tuple[DeviceShare, ...] = ()
    # Environment for the kernel, e.g. CUDA_VISIBLE_DEVICES.
    environ: dict[str, str] = field(default_factory=dict)
    # Device nodes to expose in the sandbox.
    device_paths: tuple[str, ...] = ()


@dataclass(frozen=True)
class DeviceSample:
    device_id: str
    util_percent: float
    mem_used_bytes: int
    mem_total_bytes: int
    extra: dict[str, float] = field(default_factory=dict)


@dataclass(frozen=True)
class PluginStatus:
    healthy: bool
    # "healthy", "degraded", "offline", "unavailable".
    state: str
    message: str = ""
    metadata: dict[str, str] = field(default_factory=dict)
    version: str = ""


class ComputePlugin(Protocol):
    key: str

    def slot_infos(self) -> list[SlotInfo]: ...

    def devices(self) -> list[Device]: ...

    def capacity(self) -> dict[str, Decimal]:
        """Total amount per slot this plugin offers on the node."""
        ...

    def status(self) -> PluginStatus: ...

    def allocate(self, kernel_id: str, requested: dict[str, Decimal]) -> Allocation:
        """Reserve devices for `requested` (only this plugin's slots); raises AllocationFailed."""
        ...

    def restore(self, kernel_id: str, allocation: Allocation) -> None:
        """Mark a persisted allocation as taken again (agent restart)."""
        ...

    def release(self, kernel_id: str) -> None:
        """Free what the kernel held. Idempotent."""
        ...

    def free(self) -> dict[str, Decimal]: ...

    def sample(self, device_ids: list[str] | None = None) -> list[DeviceSample]:
        """Current utilization of devices (all when None); [] for plugins with none."""
        ...
