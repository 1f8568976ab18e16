"""The CUDA plugin: whole GPUs ("cuda.device") and GPU fractions ("cuda.shares").

Each GPU offers one unit of either slot. A GPU given whole to a kernel takes
no fractions, and a GPU holding any fraction is never given whole; where a
request goes is decided by `cuda_placement`. Devices are identified by UUID,
which survives reboots and renumbering, so persisted allocations restore
onto the same GPUs. The kernel sees its GPUs in CUDA_VISIBLE_DEVICES and
NVIDIA_VISIBLE_DEVICES, and its fractions in BAI_CUDA_SHARES ("uuid=0.5").

A GPU that fails a query (status or sample) leaves the capacity until it
answers again; GPUs that fail during discovery are left out and reported.

Runs alone for GPU checks: `python -m bai.agent.resources.cuda` prints a JSON
report (needs only the standard library, nvidia-ml-py and bai.common.slots).
"""

from __future__ import annotations

import dataclasses
import json
import os
import sys
from collections.abc import Callable
from dataclasses import dataclass, field
from decimal import Decimal
from pathlib import Path
from typing import Any, Literal, TypeVar

from bai.agent.resources.cuda_placement import (
    FreeShares,
    largest_placeable,
    place_shares,
    place_whole,
)
from bai.agent.resources.nvml import Nvml, NvmlDeviceError, NvmlUnavailable, open_nvml
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
from bai.common.slots import canonical

SLOT_DEVICE = "cuda.device"
SLOT_SHARES = "cuda.shares"
ZERO = Decimal(0)
ONE = Decimal(1)
CONTROL_DEVICE_PATHS = ("/dev/nvidiactl", "/dev/nvidia-uvm")
SYSFS_PCI = Path("/sys/bus/pci/devices")

T = TypeVar("T")


@dataclass
class GpuState:
    """One discovered GPU and who holds it."""

    device: Device
    index: int
    minor: int
    whole: str | None = None
    fractions: dict[str, Decimal] = field(default_factory=dict)

    def free_share(self) -> Decimal:
        if self.whole is not None:
            return ZERO
        return ONE - sum(self.fractions.values(), ZERO)


def numa_node_of(bus_id: str, sysfs_pci: Path = SYSFS_PCI) -> int:
    """NUMA node of a PCI device; NVML's 8-digit domain becomes sysfs's 4 digits."""
    domain, sep, rest = bus_id.lower().partition(":")
    if not sep:
        return -1
    try:
        return int((sysfs_pci / f"{domain[-4:]}:{rest}" / "numa_node").read_text().strip())
    except (OSError, ValueError):
        return -1


class CudaPlugin:
    key = "cuda"

    def __init__(
        self,
        nvml: Nvml,
        *,
        allow_fragmentation: bool = True,
        visible_by: Literal["uuid", "index"] = "uuid",
        sysfs_pci: Path = SYSFS_PCI,
    ) -> None:
        self._nvml = nvml
        self._allow_fragmentation = allow_fragmentation
        self._visible_by = visible_by
        self._gpus: list[GpuState] = []
        self._unavailable = ""
        self._discovery_errors: list[str] = []
        # device id -> why it is left out of the capacity right now.
        self._failing: dict[str, str] = {}
        self._held: dict[str, Allocation] = {}
        self._discover(sysfs_pci)

    def _discover(self, sysfs_pci: Path) -> None:
        nvml = self._nvml
        try:
            count = nvml.device_count()
            for index in range(count):
                try:
                    bus_id = nvml.pci_bus_id(index)
                    minor = nvml.minor_number(index)
                    device = Device(
                        plugin=self.key,
                        device_id=nvml.uuid(index),
                        model_name=nvml.name(index),
                        memory_bytes=nvml.memory(index).total,
                        numa_node=numa_node_of(bus_id, sysfs_pci),
                        bus_id=bus_id,
                        properties={"index": str(index), "minor": str(minor)},
                    )
                except NvmlDeviceError as exc:
                    self._discovery_errors.append(str(exc))
                    continue
                self._gpus.append(GpuState(device=device, index=index, minor=minor))
        except NvmlUnavailable as exc:
            self._unavailable = str(exc)
            self._gpus = []

    def _usable(self) -> list[GpuState]:
        return [gpu for gpu in self._gpus if gpu.device.device_id not in self._failing]

    def _free_shares(self) -> FreeShares:
        return [(gpu.device.device_id, gpu.free_share()) for gpu in self._usable()]

    def slot_infos(self) -> list[SlotInfo]:
        return [SlotInfo(SLOT_DEVICE, "count", "GPU"), SlotInfo(SLOT_SHARES, "count", "fGPU")]

    def devices(self) -> list[Device]:
        return [gpu.device for gpu in self._gpus]

    def capacity(self) -> dict[str, Decimal]:
        usable = Decimal(len(self._usable()))
        return {SLOT_DEVICE: usable, SLOT_SHARES: usable}

    def free(self) -> dict[str, Decimal]:
        free = self._free_shares()
        return {
            SLOT_DEVICE: Decimal(sum(1 for _, share in free if share == ONE)),
            SLOT_SHARES: sum((share for _, share in free), ZERO),
        }

    def held_by_device(self) -> dict[str, Decimal]:
        """How much of each GPU kernels hold (1 for a whole one)."""
        return {gpu.device.device_id: ONE - gpu.free_share() for gpu in self._gpus}

    def allocate(self, kernel_id: str, requested: dict[str, Decimal]) -> Allocation:
        devices = requested.get(SLOT_DEVICE, ZERO)
        shares = requested.get(SLOT_SHARES, ZERO)
        for slot, amount in ((SLOT_DEVICE, devices), (SLOT_SHARES, shares)):
            if amount < 0:
                raise InvalidRequest(slot, amount, "negative")
        if devices != devices.to_integral_value():
            raise InvalidRequest(SLOT_DEVICE, devices, "whole GPUs only; ask for cuda.shares")
        if kernel_id in self._held:
            raise InvalidRequest(SLOT_DEVICE, devices, f"kernel {kernel_id} already holds GPUs")
        free = self._free_shares()
        whole: list[str] = []
        if devices > 0:
            placed = place_whole(free, int(devices))
            if placed is None:
                raise AllocationFailed(SLOT_DEVICE, devices, self.free()[SLOT_DEVICE])
            whole = placed
            free = [(device, ZERO if device in whole else share) for device, share in free]
        fractions: list[tuple[str, Decimal]] = []
        if shares > 0:
            spread = place_shares(free, shares, self._allow_fragmentation)
            if spread is None:
                available = largest_placeable(free, self._allow_fragmentation)
                raise AllocationFailed(SLOT_SHARES, shares, available)
            fractions = spread
        return self._record(
            kernel_id, whole, fractions, {SLOT_DEVICE: devices, SLOT_SHARES: shares}
        )

    def _record(
        self,
        kernel_id: str,
        whole: list[str],
        fractions: list[tuple[str, Decimal]],
        requested: dict[str, Decimal],
    ) -> Allocation:
        by_id = {gpu.device.device_id: gpu for gpu in self._gpus}
        for device in whole:
            by_id[device].whole = kernel_id
        for device, amount in fractions:
            by_id[device].fractions[kernel_id] = amount
        used_ids = set(whole) | {device for device, _ in fractions}
        used = [gpu for gpu in self._gpus if gpu.device.device_id in used_ids]
        visible = ",".join(
            gpu.device.device_id if self._visible_by == "uuid" else str(gpu.index) for gpu in used
        )
        environ: dict[str, str] = {}
        device_paths: tuple[str, ...] = ()
        if used:
            environ = {"CUDA_VISIBLE_DEVICES": visible, "NVIDIA_VISIBLE_DEVICES": visible}
            device_paths = tuple(f"/dev/nvidia{gpu.minor}" for gpu in used) + CONTROL_DEVICE_PATHS
        if fractions:
            environ["BAI_CUDA_SHARES"] = ",".join(f"{d}={canonical(a)}" for d, a in fractions)
        allocation = Allocation(
            plugin=self.key,
            slots={slot: amount for slot, amount in requested.items() if amount > 0},
            shares=tuple(DeviceShare(d, SLOT_DEVICE, ONE) for d in whole)
            + tuple(DeviceShare(d, SLOT_SHARES, a) for d, a in fractions),
            environ=environ,
            device_paths=device_paths,
        )
        self._held[kernel_id] = allocation
        return allocation

    def restore(self, kernel_id: str, allocation: Allocation) -> None:
        if kernel_id in self._held:
            return
        self._held[kernel_id] = allocation
        by_id = {gpu.device.device_id: gpu for gpu in self._gpus}
        for share in allocation.shares:
            gpu = by_id.get(share.device_id)
            if gpu is None:
                continue  # the GPU is gone since the kernel started
            if share.slot == SLOT_DEVICE:
                gpu.whole = gpu.whole or kernel_id
            elif share.slot == SLOT_SHARES:
                gpu.fractions[kernel_id] = gpu.fractions.get(kernel_id, ZERO) + share.amount

    def release(self, kernel_id: str) -> None:
        self._held.pop(kernel_id, None)
        for gpu in self._gpus:
            if gpu.whole == kernel_id:
                gpu.whole = None
            gpu.fractions.pop(kernel_id, None)

    def status(self) -> PluginStatus:
        if self._unavailable:
            return PluginStatus(healthy=False, state="unavailable", message=self._unavailable)
        if not self._gpus and not self._discovery_errors:
            return PluginStatus(healthy=False, state="unavailable", message="NVML reports no GPUs")
        try:
            metadata = {
                "driver_version": self._nvml.driver_version(),
                "cuda_version": self._nvml.cuda_driver_version(),
            }
            for gpu in self._gpus:
                self._probe(gpu, self._nvml.memory)
        except NvmlUnavailable as exc:
            return PluginStatus(healthy=False, state="offline", message=str(exc))
        metadata["devices"] = str(len(self._usable()))
        problems = self._discovery_errors + list(self._failing.values())
        if not self._usable():
            state = "offline"
        elif problems:
            state = "degraded"
        else:
            state = "healthy"
        return PluginStatus(
            healthy=state == "healthy",
            state=state,
            message="; ".join(problems),
            metadata=metadata,
            version=metadata["driver_version"],
        )

    def _probe(self, gpu: GpuState, query: Callable[[int], T]) -> T | None:
        """Run one query on a GPU, marking it failing (None) or recovered."""
        try:
            result = query(gpu.index)
        except NvmlDeviceError as exc:
            self._failing[gpu.device.device_id] = str(exc)
            return None
        self._failing.pop(gpu.device.device_id, None)
        return result

    def sample(self, device_ids: list[str] | None = None) -> list[DeviceSample]:
        samples: list[DeviceSample] = []
        try:
            for gpu in self._gpus:
                if device_ids is not None and gpu.device.device_id not in device_ids:
                    continue
                sample = self._probe(gpu, self._sample_one)
                if sample is not None:
                    samples.append(sample)
        except NvmlUnavailable:
            return []
        return samples

    def _sample_one(self, index: int) -> DeviceSample:
        memory = self._nvml.memory(index)
        extra: dict[str, float] = {}
        temperature = self._nvml.temperature(index)
        if temperature is not None:
            extra["temperature_c"] = temperature
        power = self._nvml.power_watts(index)
        if power is not None:
            extra["power_w"] = power
        return DeviceSample(
            device_id=self._nvml.uuid(index),
            util_percent=self._nvml.utilization(index) or 0.0,
            mem_used_bytes=memory.used,
            mem_total_bytes=memory.total,
            extra=extra,
        )


def self_test(plugin: CudaPlugin) -> tuple[dict[str, Any], bool]:
    """Allocate and release one whole GPU and half a GPU; the report and whether all
    checks passed."""
    report: dict[str, Any] = {
        "status": dataclasses.asdict(plugin.status()),
        "devices": [dataclasses.asdict(device) for device in plugin.devices()],
        "capacity": plugin.capacity(),
        "free": plugin.free(),
    }
    checks: dict[str, bool] = {}
    before = plugin.free()
    trials = {"whole": {SLOT_DEVICE: ONE}, "half": {SLOT_SHARES: Decimal("0.5")}}
    for name, request in trials.items():
        slot, amount = next(iter(request.items()))
        if plugin.capacity()[slot] < amount:
            continue
        allocation = plugin.allocate(f"self-test-{name}", request)
        report[f"allocation_{name}"] = dataclasses.asdict(allocation)
        report[f"free_with_{name}"] = plugin.free()
        checks[f"{name}_takes_{amount}"] = before[slot] - plugin.free()[slot] == amount
        # Informational: a container without the NVIDIA runtime can lack the nodes.
        missing = [path for path in allocation.device_paths if not os.path.exists(path)]
        report[f"missing_device_nodes_{name}"] = missing
        plugin.release(f"self-test-{name}")
        checks[f"{name}_released"] = plugin.free() == before
    report["sample"] = [dataclasses.asdict(sample) for sample in plugin.sample()]
    checks["sampled_every_device"] = len(report["sample"]) == len(plugin.devices())
    report["checks"] = checks
    return report, plugin.status().state != "unavailable" and all(checks.values())


def main() -> int:
    report, passed = self_test(CudaPlugin(open_nvml()))
    json.dump(report, sys.stdout, indent=2, default=str)
    sys.stdout.write("\n")
    return 0 if passed else 1


if __name__ == "__main__":
    raise SystemExit(main())
