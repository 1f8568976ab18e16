"""Kernel logs and live statistics, as the agent streams them."""

from __future__ import annotations

import asyncio
import os
import time
from collections.abc import AsyncIterator
from datetime import datetime
from pathlib import Path

from google.protobuf.duration_pb2 import Duration

from bai.agent.kernels.lifecycle import KernelManager
from bai.agent.kernels.records import KernelRecord
from bai.agent.resources.plugin import ComputePlugin, DeviceSample
from bai.agent.runtime.base import RuntimeFailure, SandboxStats
from bai.api.common.v1 import execution_pb2, stats_pb2
from bai.common.errors import InvalidArgument, NotFound

STREAMS = {
    "stdout": execution_pb2.OUTPUT_STREAM_STDOUT,
    "stderr": execution_pb2.OUTPUT_STREAM_STDERR,
}


async def stream_logs(
    km: KernelManager, kernel_id: str, tail: int | None, follow: bool, since: datetime | None
) -> AsyncIterator[execution_pb2.LogEntry]:
    if tail is not None and tail < 0:
        raise InvalidArgument.field("tail", "must not be negative")
    record = km.get(kernel_id)
    if not record.sandbox_id or record.is_terminal:
        raise NotFound(f"kernel {kernel_id} has no container (any more)")
    async for line in km.ctx.runtime.logs(record.sandbox_id, tail=tail, follow=follow, since=since):
        entry = execution_pb2.LogEntry(
            kernel_id=kernel_id, stream=STREAMS[line.stream], data=line.data
        )
        entry.time.FromDatetime(line.time)
        yield entry


def _device_stats(plugin: str, samples: list[DeviceSample]) -> list[stats_pb2.DeviceStats]:
    return [
        stats_pb2.DeviceStats(
            plugin=plugin,
            device_id=s.device_id,
            util_percent=s.util_percent,
            mem_used_bytes=s.mem_used_bytes,
            mem_total_bytes=s.mem_total_bytes,
            extra=s.extra,
        )
        for s in samples
    ]


def _dir_size(path: Path) -> int:
    total = 0
    for root, _, files in os.walk(path):
        for name in files:
            try:
                total += os.lstat(os.path.join(root, name)).st_size
            except OSError:
                continue
    return total


def cpu_percent(previous: tuple[int, float] | None, used_ns: int, now: float) -> float:
    """100 = one full core, from cumulative cpu time between two samples."""
    if previous is None:
        return 0.0
    used_before, then = previous
    elapsed = now - then
    if elapsed <= 0 or used_ns < used_before:
        return 0.0
    return (used_ns - used_before) / (elapsed * 1e9) * 100.0


class StatsSampler:
    """One per stream: cpu % is the change since this stream's previous sample."""

    def __init__(self, km: KernelManager) -> None:
        self.km = km
        self._cpu: dict[str, tuple[int, float]] = {}
        self._node_cpu: tuple[int, float] | None = None

    def _plugin(self, key: str) -> ComputePlugin | None:
        return next((p for p in self.km.ctx.plugins if p.key == key), None)

    async def kernel(self, record: KernelRecord) -> stats_pb2.KernelStats | None:
        try:
            raw: SandboxStats = await self.km.ctx.runtime.stats(record.sandbox_id)
        except RuntimeFailure:
            return None
        now = time.monotonic()
        stats = kernel_stats(record.kernel_id, raw)
        stats.cpu_util_percent = cpu_percent(self._cpu.get(record.kernel_id), raw.cpu_used_ns, now)
        self._cpu[record.kernel_id] = (raw.cpu_used_ns, now)
        scratch = self.km.ctx.scratch_dir(record.kernel_id)
        stats.scratch_used_bytes = await asyncio.to_thread(_dir_size, scratch)
        for allocation in record.allocations:
            plugin = self._plugin(allocation.plugin)
            ids = sorted({s.device_id for s in allocation.shares})
            if plugin is None or not ids or allocation.plugin == "cpu":
                continue
            stats.devices.extend(_device_stats(plugin.key, plugin.sample(ids)))
        return stats

    def node(self) -> stats_pb2.NodeStats:
        node = stats_pb2.NodeStats()
        now = time.monotonic()
        used_ns = _node_cpu_ns()
        node.cpu_util_percent = cpu_percent(self._node_cpu, used_ns, now)
        self._node_cpu = (used_ns, now)
        total, available = _meminfo()
        node.mem_total_bytes, node.mem_used_bytes = total, total - available
        node.net_rx_bytes, node.net_tx_bytes = _net_totals()
        disk = os.statvfs(self.km.ctx.state_dir)
        node.disk_total_bytes = disk.f_blocks * disk.f_frsize
        node.disk_used_bytes = (disk.f_blocks - disk.f_bfree) * disk.f_frsize
        for plugin in self.km.ctx.plugins:
            node.devices.extend(_device_stats(plugin.key, plugin.sample(None)))
        return node


def kernel_stats(kernel_id: str, raw: SandboxStats) -> stats_pb2.KernelStats:
    used = Duration()
    used.FromNanoseconds(raw.cpu_used_ns)
    return stats_pb2.KernelStats(
        kernel_id=kernel_id,
        cpu_used=used,
        mem_used_bytes=raw.mem_used_bytes,
        mem_limit_bytes=raw.mem_limit_bytes,
        net_rx_bytes=raw.net_rx_bytes,
        net_tx_bytes=raw.net_tx_bytes,
        io_read_bytes=raw.io_read_bytes,
        io_write_bytes=raw.io_write_bytes,
    )


def _node_cpu_ns() -> int:
    with open("/proc/stat", encoding="ascii") as stat:
        fields = stat.readline().split()[1:]
    # user nice system irq softirq steal (not idle, iowait), in USER_HZ ticks.
    busy = sum(int(fields[i]) for i in (0, 1, 2, 5, 6, 7) if i < len(fields))
    return busy * 1_000_000_000 // os.sysconf("SC_CLK_TCK")


def _meminfo() -> tuple[int, int]:
    values: dict[str, int] = {}
    with open("/proc/meminfo", encoding="ascii") as info:
        for line in info:
            key, _, rest = line.partition(":")
            values[key] = int(rest.split()[0]) * 1024
    return values.get("MemTotal", 0), values.get("MemAvailable", 0)


def _net_totals() -> tuple[int, int]:
    rx = tx = 0
    with open("/proc/net/dev", encoding="ascii") as dev:
        for line in list(dev)[2:]:
            name, _, rest = line.partition(":")
            if name.strip() == "lo":
                continue
            fields = rest.split()
            rx += int(fields[0])
            tx += int(fields[8])
    return rx, tx
