"""Helpers that build plugins over fake GPUs for the resource tests."""

from __future__ import annotations

import json
from decimal import Decimal
from pathlib import Path
from typing import Any

from bai.agent.resources.cuda import CudaPlugin
from bai.agent.resources.fake_nvml import FakeNvml


def gpu_ids(count: int) -> list[str]:
    return [f"GPU-{i}" for i in range(count)]


def fake_nvml(count: int, **gpu_fields: Any) -> FakeNvml:
    return FakeNvml.from_dict({"gpus": [{"uuid": uuid, **gpu_fields} for uuid in gpu_ids(count)]})


def cuda_plugin(count: int, *, allow_fragmentation: bool = True) -> CudaPlugin:
    return CudaPlugin(fake_nvml(count), allow_fragmentation=allow_fragmentation)


def write_description(path: Path, gpus: list[dict[str, Any]], **top: Any) -> Path:
    path.write_text(json.dumps({"gpus": gpus, **top}), encoding="utf-8")
    return path


def dec(value: str | int) -> Decimal:
    return Decimal(value)
