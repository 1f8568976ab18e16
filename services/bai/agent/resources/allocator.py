"""The node's allocator: one kernel's slot request across all compute plugins.

`allocate` is all-or-nothing: each plugin gets the slots it owns, and when one
plugin cannot meet its part, the plugins that already allocated release
again. Nothing here awaits, so callers interleaved on one event loop always
see a consistent state. Allocations are plain JSON-able dicts (`to_json`,
`from_json`) that the agent stores with the kernel record and hands back to
`restore` after a restart; restoring a kernel that is already known is a
no-op, so nothing is ever allocated twice.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from decimal import Decimal, InvalidOperation
from typing import Any

from bai.agent.resources.plugin import (
    Allocation,
    AllocationFailed,
    ComputePlugin,
    DeviceShare,
    InvalidRequest,
    SlotInfo,
)
from bai.common.slots import Slots, canonical, total

ZERO = Decimal(0)


class UnknownSlot(AllocationFailed):
    """No plugin on this node offers the slot (e.g. cuda.device on a CPU-only node)."""

    def __init__(self, slot: str, requested: Decimal) -> None:
        super().__init__(slot, requested, ZERO)
        self.args = (f"{slot}: requested {requested}, but this node has no such slot",)


class AlreadyAllocated(ValueError):
    def __init__(self, kernel_id: str) -> None:
        super().__init__(f"kernel {kernel_id} already holds an allocation")
        self.kernel_id = kernel_id


class MalformedAllocation(ValueError):
    """A persisted allocation record that cannot be read back."""


class NodeAllocator:
    def __init__(self, plugins: Sequence[ComputePlugin]) -> None:
        self._plugins = list(plugins)
        self._slot_owner: dict[str, ComputePlugin] = {}
        for plugin in self._plugins:
            for info in plugin.slot_infos():
                if info.name in self._slot_owner:
                    owner = self._slot_owner[info.name].key
                    raise ValueError(f"slot {info.name} offered by both {owner} and {plugin.key}")
                self._slot_owner[info.name] = plugin
        self._kernels: dict[str, list[Allocation]] = {}

    @property
    def plugins(self) -> list[ComputePlugin]:
        return list(self._plugins)

    def slot_infos(self) -> list[SlotInfo]:
        return [info for plugin in self._plugins for info in plugin.slot_infos()]

    def capacity(self) -> Slots:
        return total(plugin.capacity() for plugin in self._plugins)

    def free(self) -> Slots:
        return total(plugin.free() for plugin in self._plugins)

    def occupied(self) -> Slots:
        """What kernels hold: the sum of their allocations' slots."""
        return total(allocation.slots for held in self._kernels.values() for allocation in held)

    def kernel_ids(self) -> list[str]:
        return sorted(self._kernels)

    def allocations(self, kernel_id: str) -> list[Allocation] | None:
        held = self._kernels.get(kernel_id)
        return None if held is None else list(held)

    def allocate(self, kernel_id: str, requested: Mapping[str, Decimal]) -> list[Allocation]:
        """Allocate every nonzero slot or nothing; raises AllocationFailed (UnknownSlot
        for a slot no plugin offers), InvalidRequest or AlreadyAllocated."""
        if kernel_id in self._kernels:
            raise AlreadyAllocated(kernel_id)
        per_plugin: dict[str, dict[str, Decimal]] = {}
        for slot, amount in sorted(requested.items()):
            if amount < 0:
                raise InvalidRequest(slot, amount, "negative")
            if amount == 0:
                continue
            owner = self._slot_owner.get(slot)
            if owner is None:
                raise UnknownSlot(slot, amount)
            per_plugin.setdefault(owner.key, {})[slot] = amount
        done: list[tuple[ComputePlugin, Allocation]] = []
        try:
            for plugin in self._plugins:
                if plugin.key in per_plugin:
                    done.append((plugin, plugin.allocate(kernel_id, per_plugin[plugin.key])))
        except BaseException:
            for plugin, _ in done:
                plugin.release(kernel_id)
            raise
        self._kernels[kernel_id] = [allocation for _, allocation in done]
        return self._kernels[kernel_id]

    def release(self, kernel_id: str) -> None:
        """Free what the kernel holds. Idempotent."""
        self._kernels.pop(kernel_id, None)
        for plugin in self._plugins:
            plugin.release(kernel_id)

    def restore(self, kernel_id: str, allocations: Sequence[Allocation]) -> None:
        """Take a running kernel's persisted allocations back; a no-op for a kernel this
        allocator already knows. Allocations of plugins no longer loaded are kept in
        the kernel's record but occupy nothing."""
        if kernel_id in self._kernels:
            return
        plugins = {plugin.key: plugin for plugin in self._plugins}
        for allocation in allocations:
            plugin = plugins.get(allocation.plugin)
            if plugin is not None:
                plugin.restore(kernel_id, allocation)
        self._kernels[kernel_id] = list(allocations)


def to_json(allocation: Allocation) -> dict[str, Any]:
    return {
        "plugin": allocation.plugin,
        "slots": {slot: canonical(amount) for slot, amount in sorted(allocation.slots.items())},
        "shares": [
            {"device_id": share.device_id, "slot": share.slot, "amount": canonical(share.amount)}
            for share in allocation.shares
        ],
        "environ": dict(allocation.environ),
        "device_paths": list(allocation.device_paths),
    }


def from_json(data: Any) -> Allocation:
    """The inverse of `to_json`; raises MalformedAllocation naming what is wrong."""
    if not isinstance(data, dict):
        raise MalformedAllocation(f"an allocation is an object, not {type(data).__name__}")
    plugin = data.get("plugin")
    if not isinstance(plugin, str) or not plugin:
        raise MalformedAllocation("allocation.plugin must be a non-empty string")
    shares = data.get("shares", [])
    if not isinstance(shares, list):
        raise MalformedAllocation("allocation.shares must be a list")
    return Allocation(
        plugin=plugin,
        slots={slot: _decimal(f"slots.{slot}", v) for slot, v in _strings(data, "slots").items()},
        shares=tuple(_share(i, share) for i, share in enumerate(shares)),
        environ=_strings(data, "environ"),
        device_paths=tuple(_string_list(data, "device_paths")),
    )


def _share(index: int, data: Any) -> DeviceShare:
    where = f"shares[{index}]"
    if not isinstance(data, dict):
        raise MalformedAllocation(f"allocation.{where} must be an object")
    device_id, slot = data.get("device_id"), data.get("slot")
    if not isinstance(device_id, str) or not isinstance(slot, str):
        raise MalformedAllocation(f"allocation.{where} needs string device_id and slot")
    return DeviceShare(device_id, slot, _decimal(f"{where}.amount", data.get("amount")))


def _decimal(where: str, raw: Any) -> Decimal:
    try:
        value = Decimal(raw) if isinstance(raw, str) else None
    except InvalidOperation:
        value = None
    if value is None or not value.is_finite():
        raise MalformedAllocation(f"allocation.{where}: {raw!r} is not a decimal string")
    return value


def _strings(data: dict[str, Any], key: str) -> dict[str, str]:
    value = data.get(key, {})
    if not isinstance(value, dict) or not all(
        isinstance(k, str) and isinstance(v, str) for k, v in value.items()
    ):
        raise MalformedAllocation(f"allocation.{key} must map strings to strings")
    return dict(value)


def _string_list(data: dict[str, Any], key: str) -> list[str]:
    value = data.get(key, [])
    if not isinstance(value, list) or not all(isinstance(item, str) for item in value):
        raise MalformedAllocation(f"allocation.{key} must be a list of strings")
    return list(value)
