"""An NVML stand-in described by JSON, for machines without NVIDIA GPUs.

    {"driver_version": "550.54.15", "cuda_driver_version": "12.4",
     "unavailable": "",            # non-empty: every call raises NvmlUnavailable
     "gpus": [{"uuid": "GPU-0", "name": "NVIDIA A100", "memory_total": 85899345920,
               "memory_used": 0, "utilization": 0, "pci_bus_id": "00000000:17:00.0",
               "minor": 0, "temperature": 31, "power": 62.5, "failing": false}]}

Only "uuid" is required per GPU. Built from a file (`from_path`), the fake
reads the file again on every query, so a test changes the numbers, or makes
a GPU fail, by rewriting it; built in memory (`from_dict`), a test changes
`fake.gpus[i]` directly.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, fields
from pathlib import Path
from typing import Any

from bai.agent.resources.nvml import GpuMemory, NvmlDeviceError, NvmlUnavailable

GIB = 1024**3
_TOP_LEVEL_KEYS = {"driver_version", "cuda_driver_version", "unavailable", "gpus"}
# JSON names that differ from the attribute names.
_GPU_ALIASES = {"power": "power_watts"}


@dataclass
class FakeGpu:
    uuid: str
    name: str = "Fake NVIDIA GPU"
    memory_total: int = 16 * GIB
    memory_used: int = 0
    utilization: float | None = 0.0
    pci_bus_id: str = ""
    minor: int | None = None
    temperature: float | None = None
    power_watts: float | None = None
    # Every query on this GPU fails (it "fell off the bus").
    failing: bool = False

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> FakeGpu:
        known = {f.name for f in fields(cls)}
        values: dict[str, Any] = {}
        for key, value in data.items():
            name = _GPU_ALIASES.get(key, key)
            if name not in known:
                raise ValueError(f"fake NVML: unknown GPU field {key!r}")
            values[name] = value
        if not isinstance(values.get("uuid"), str):
            raise ValueError("fake NVML: every GPU needs a string 'uuid'")
        return cls(**values)


class FakeNvml:
    """Implements `bai.agent.resources.nvml.Nvml`."""

    def __init__(
        self,
        gpus: list[FakeGpu],
        *,
        driver_version: str = "550.54.15",
        cuda_driver_version: str = "12.4",
        unavailable: str = "",
        path: Path | None = None,
    ) -> None:
        self.gpus = gpus
        self.driver = driver_version
        self.cuda = cuda_driver_version
        self.unavailable = unavailable
        self._path = path

    @classmethod
    def from_dict(cls, data: dict[str, Any], path: Path | None = None) -> FakeNvml:
        unknown = set(data) - _TOP_LEVEL_KEYS
        if unknown:
            raise ValueError(f"fake NVML: unknown keys {sorted(unknown)}")
        return cls(
            [FakeGpu.from_dict(gpu) for gpu in data.get("gpus", [])],
            driver_version=str(data.get("driver_version", "550.54.15")),
            cuda_driver_version=str(data.get("cuda_driver_version", "12.4")),
            unavailable=str(data.get("unavailable", "")),
            path=path,
        )

    @classmethod
    def from_path(cls, path: Path) -> FakeNvml:
        fake = cls([], path=path)
        fake._reload()
        return fake

    def _reload(self) -> None:
        if self._path is None:
            return
        try:
            data = json.loads(self._path.read_text(encoding="utf-8"))
        except (OSError, ValueError) as exc:
            raise NvmlUnavailable(f"fake NVML description {self._path}: {exc}") from exc
        fresh = FakeNvml.from_dict(data)
        self.gpus = fresh.gpus
        self.driver = fresh.driver
        self.cuda = fresh.cuda
        self.unavailable = fresh.unavailable

    def _check(self) -> None:
        self._reload()
        if self.unavailable:
            raise NvmlUnavailable(self.unavailable)

    def _gpu(self, index: int) -> FakeGpu:
        self._check()
        if not 0 <= index < len(self.gpus):
            raise NvmlDeviceError(index, "Invalid Argument")
        gpu = self.gpus[index]
        if gpu.failing:
            raise NvmlDeviceError(index, "GPU is lost")
        return gpu

    def driver_version(self) -> str:
        self._check()
        return self.driver

    def cuda_driver_version(self) -> str:
        self._check()
        return self.cuda

    def device_count(self) -> int:
        self._check()
        return len(self.gpus)

    def uuid(self, index: int) -> str:
        return self._gpu(index).uuid

    def name(self, index: int) -> str:
        return self._gpu(index).name

    def minor_number(self, index: int) -> int:
        minor = self._gpu(index).minor
        return index if minor is None else minor

    def pci_bus_id(self, index: int) -> str:
        gpu = self._gpu(index)
        return gpu.pci_bus_id or f"00000000:{index + 1:02x}:00.0"

    def memory(self, index: int) -> GpuMemory:
        gpu = self._gpu(index)
        return GpuMemory(total=gpu.memory_total, used=gpu.memory_used)

    def utilization(self, index: int) -> float | None:
        return self._gpu(index).utilization

    def temperature(self, index: int) -> float | None:
        return self._gpu(index).temperature

    def power_watts(self, index: int) -> float | None:
        return self._gpu(index).power_watts
