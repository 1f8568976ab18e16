"""A thin typed view of the NVML queries the CUDA plugin makes, by device index.

`PynvmlNvml` implements it with `pynvml` (package nvidia-ml-py), imported and
initialised on first use: a missing package, a missing libnvidia-ml or a driver
that is not loaded all raise `NvmlUnavailable`; a device that fails a query
raises `NvmlDeviceError`. `open_nvml` returns the fake from `fake_nvml` instead
when BAI_FAKE_NVML names a JSON description. Standard library only otherwise.
"""

from __future__ import annotations

import importlib
import os
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path
from types import ModuleType
from typing import Any, Protocol, TypeVar

FAKE_NVML_ENV = "BAI_FAKE_NVML"

T = TypeVar("T")


class NvmlUnavailable(Exception):
    """NVML cannot be used at all (no library, no driver)."""


class NvmlDeviceError(Exception):
    """One device failed a query (fell off the bus, reset in progress, ...)."""

    def __init__(self, index: int, detail: str) -> None:
        super().__init__(f"GPU {index}: {detail}")
        self.index = index
        self.detail = detail


@dataclass(frozen=True)
class GpuMemory:
    total: int
    used: int


class Nvml(Protocol):
    def driver_version(self) -> str: ...

    def cuda_driver_version(self) -> str:
        """The CUDA version the driver supports, e.g. "12.4"."""
        ...

    def device_count(self) -> int: ...

    def uuid(self, index: int) -> str: ...

    def name(self, index: int) -> str: ...

    def minor_number(self, index: int) -> int:
        """N of the device node /dev/nvidiaN."""
        ...

    def pci_bus_id(self, index: int) -> str: ...

    def memory(self, index: int) -> GpuMemory: ...

    def utilization(self, index: int) -> float | None:
        """GPU busy percent; None where unsupported (e.g. MIG-enabled GPUs)."""
        ...

    def temperature(self, index: int) -> float | None:
        """Degrees Celsius; None where unsupported."""
        ...

    def power_watts(self, index: int) -> float | None:
        """Current draw; None where unsupported."""
        ...


def _text(value: str | bytes) -> str:
    return value.decode() if isinstance(value, bytes) else value


class PynvmlNvml:
    """NVML through pynvml; initialised on the first call."""

    def __init__(self) -> None:
        self._lib: ModuleType | None = None
        self._handles: dict[int, Any] = {}

    def _nvml(self) -> ModuleType:
        if self._lib is not None:
            return self._lib
        try:
            lib = importlib.import_module("pynvml")
        except ImportError as exc:
            raise NvmlUnavailable("nvidia-ml-py (pynvml) is not installed") from exc
        try:
            lib.nvmlInit()
        except (lib.NVMLError, OSError) as exc:
            raise NvmlUnavailable(f"NVML could not be initialised: {exc}") from exc
        self._lib = lib
        return lib

    def _system(self, call: Callable[[ModuleType], T]) -> T:
        lib = self._nvml()
        try:
            return call(lib)
        except lib.NVMLError as exc:
            raise NvmlUnavailable(f"NVML query failed: {exc}") from exc

    def _device(self, index: int, call: Callable[[ModuleType, Any], T]) -> T:
        lib = self._nvml()
        try:
            handle = self._handles.get(index)
            if handle is None:
                handle = self._handles[index] = lib.nvmlDeviceGetHandleByIndex(index)
            return call(lib, handle)
        except lib.NVMLError as exc:
            raise NvmlDeviceError(index, str(exc)) from exc

    def _optional(self, index: int, call: Callable[[ModuleType, Any], T]) -> T | None:
        lib = self._nvml()
        try:
            return self._device(index, call)
        except NvmlDeviceError as exc:
            cause = exc.__cause__
            if getattr(cause, "value", None) == lib.NVML_ERROR_NOT_SUPPORTED:
                return None
            raise

    def driver_version(self) -> str:
        return self._system(lambda lib: _text(lib.nvmlSystemGetDriverVersion()))

    def cuda_driver_version(self) -> str:
        version = self._system(lambda lib: int(lib.nvmlSystemGetCudaDriverVersion()))
        return f"{version // 1000}.{version % 1000 // 10}"

    def device_count(self) -> int:
        return self._system(lambda lib: int(lib.nvmlDeviceGetCount()))

    def uuid(self, index: int) -> str:
        return self._device(index, lambda lib, h: _text(lib.nvmlDeviceGetUUID(h)))

    def name(self, index: int) -> str:
        return self._device(index, lambda lib, h: _text(lib.nvmlDeviceGetName(h)))

    def minor_number(self, index: int) -> int:
        return self._device(index, lambda lib, h: int(lib.nvmlDeviceGetMinorNumber(h)))

    def pci_bus_id(self, index: int) -> str:
        return self._device(index, lambda lib, h: _text(lib.nvmlDeviceGetPciInfo(h).busId))

    def memory(self, index: int) -> GpuMemory:
        info = self._device(index, lambda lib, h: lib.nvmlDeviceGetMemoryInfo(h))
        return GpuMemory(total=int(info.total), used=int(info.used))

    def utilization(self, index: int) -> float | None:
        rates = self._optional(index, lambda lib, h: lib.nvmlDeviceGetUtilizationRates(h))
        return None if rates is None else float(rates.gpu)

    def temperature(self, index: int) -> float | None:
        return self._optional(
            index,
            lambda lib, h: float(lib.nvmlDeviceGetTemperature(h, lib.NVML_TEMPERATURE_GPU)),
        )

    def power_watts(self, index: int) -> float | None:
        milliwatts = self._optional(index, lambda lib, h: int(lib.nvmlDeviceGetPowerUsage(h)))
        return None if milliwatts is None else milliwatts / 1000


def open_nvml(environ: Mapping[str, str] | None = None) -> Nvml:
    """The fake when BAI_FAKE_NVML names a JSON file, else the real NVML."""
    fake_path = (os.environ if environ is None else environ).get(FAKE_NVML_ENV, "")
    if fake_path:
        from bai.agent.resources.fake_nvml import FakeNvml

        return FakeNvml.from_path(Path(fake_path))
    return PynvmlNvml()
