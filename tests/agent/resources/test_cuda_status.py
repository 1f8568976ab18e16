"""The CUDA plugin over NVML: discovery, status, samples, and the standalone report."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from decimal import Decimal
from pathlib import Path

import pytest

from bai.agent.resources.cuda import SLOT_DEVICE, SLOT_SHARES, CudaPlugin, numa_node_of
from bai.agent.resources.fake_nvml import FakeNvml
from bai.agent.resources.nvml import FAKE_NVML_ENV, PynvmlNvml, open_nvml
from bai.agent.resources.plugin import AllocationFailed
from tests.agent.resources.fakes import fake_nvml, write_description

REPO = Path(__file__).resolve().parents[3]
GIB = 1024**3


def two_gpus(*, failing: int | None = None) -> list[dict[str, object]]:
    return [
        {
            "uuid": f"GPU-{i}",
            "name": "NVIDIA A100-SXM4-80GB",
            "memory_total": 80 * GIB,
            "memory_used": (i + 1) * GIB,
            "utilization": 10 * (i + 1),
            "failing": i == failing,
        }
        for i in range(2)
    ]


def test_without_the_nvml_package_the_plugin_is_unavailable(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setitem(sys.modules, "pynvml", None)  # import now raises ImportError
    plugin = CudaPlugin(PynvmlNvml())
    status = plugin.status()
    assert (status.healthy, status.state) == (False, "unavailable")
    assert "nvidia-ml-py" in status.message
    assert plugin.capacity() == {SLOT_DEVICE: 0, SLOT_SHARES: 0}
    assert plugin.devices() == []
    assert plugin.sample() == []
    with pytest.raises(AllocationFailed) as failure:
        plugin.allocate("k1", {SLOT_DEVICE: Decimal(1)})
    assert (failure.value.slot, failure.value.free) == (SLOT_DEVICE, Decimal(0))


def test_a_driver_that_is_not_loaded_makes_the_plugin_unavailable() -> None:
    plugin = CudaPlugin(FakeNvml.from_dict({"unavailable": "Driver Not Loaded", "gpus": []}))
    status = plugin.status()
    assert (status.state, status.message) == ("unavailable", "Driver Not Loaded")


def test_no_gpus_is_unavailable() -> None:
    status = CudaPlugin(fake_nvml(0)).status()
    assert (status.healthy, status.state, status.message) == (
        False,
        "unavailable",
        "NVML reports no GPUs",
    )


def test_discovery_describes_each_gpu(tmp_path: Path) -> None:
    (tmp_path / "0000:17:00.0").mkdir()
    (tmp_path / "0000:17:00.0" / "numa_node").write_text("1\n")
    nvml = fake_nvml(2, name="NVIDIA H100", memory_total=80 * GIB)
    nvml.gpus[0].pci_bus_id = "00000000:17:00.0"
    nvml.gpus[1].minor = 5
    plugin = CudaPlugin(nvml, sysfs_pci=tmp_path)
    first, second = plugin.devices()
    assert (first.device_id, first.model_name, first.memory_bytes) == (
        "GPU-0",
        "NVIDIA H100",
        80 * GIB,
    )
    assert (first.bus_id, first.numa_node) == ("00000000:17:00.0", 1)
    assert second.numa_node == -1
    assert second.properties == {"index": "1", "minor": "5"}
    status = plugin.status()
    assert (status.healthy, status.state, status.version) == (True, "healthy", "550.54.15")
    assert status.metadata == {
        "driver_version": "550.54.15",
        "cuda_version": "12.4",
        "devices": "2",
    }


def test_numa_node_of_unknown_bus_is_minus_one(tmp_path: Path) -> None:
    assert numa_node_of("00000000:99:00.0", tmp_path) == -1
    assert numa_node_of("garbage", tmp_path) == -1


def test_a_gpu_that_fails_queries_degrades_the_plugin_until_it_answers(tmp_path: Path) -> None:
    description = write_description(tmp_path / "gpus.json", two_gpus())
    plugin = CudaPlugin(FakeNvml.from_path(description))
    assert plugin.status().state == "healthy"
    plugin.allocate("k1", {SLOT_SHARES: Decimal("0.5")})

    write_description(description, two_gpus(failing=1))
    status = plugin.status()
    assert (status.healthy, status.state) == (False, "degraded")
    assert "GPU 1" in status.message
    assert plugin.capacity() == {SLOT_DEVICE: 1, SLOT_SHARES: 1}
    assert plugin.free() == {SLOT_DEVICE: 0, SLOT_SHARES: Decimal("0.5")}
    with pytest.raises(AllocationFailed):
        plugin.allocate("k2", {SLOT_DEVICE: Decimal(1)})

    write_description(description, two_gpus())
    assert plugin.status().state == "healthy"
    assert plugin.allocate("k2", {SLOT_DEVICE: Decimal(1)}).shares[0].device_id == "GPU-1"


def test_a_gpu_failing_at_discovery_is_left_out(tmp_path: Path) -> None:
    description = write_description(tmp_path / "gpus.json", two_gpus(failing=0))
    plugin = CudaPlugin(FakeNvml.from_path(description))
    assert [device.device_id for device in plugin.devices()] == ["GPU-1"]
    status = plugin.status()
    assert status.state == "degraded"
    assert "GPU 0" in status.message
    assert plugin.capacity() == {SLOT_DEVICE: 1, SLOT_SHARES: 1}


def test_every_gpu_failing_is_offline_and_a_vanished_driver_too(tmp_path: Path) -> None:
    description = write_description(tmp_path / "gpus.json", two_gpus())
    plugin = CudaPlugin(FakeNvml.from_path(description))
    write_description(description, [{**gpu, "failing": True} for gpu in two_gpus()])
    assert plugin.status().state == "offline"
    write_description(description, two_gpus(), unavailable="Driver/library version mismatch")
    status = plugin.status()
    assert (status.state, status.message) == ("offline", "Driver/library version mismatch")
    assert plugin.sample() == []


def test_samples_follow_the_devices_numbers(tmp_path: Path) -> None:
    gpus = two_gpus()
    description = write_description(tmp_path / "gpus.json", gpus)
    plugin = CudaPlugin(FakeNvml.from_path(description))
    first, second = plugin.sample()
    assert (first.device_id, first.util_percent, first.mem_used_bytes) == ("GPU-0", 10, GIB)
    assert (second.mem_total_bytes, second.extra) == (80 * GIB, {})

    gpus[1].update(utilization=97, memory_used=70 * GIB, temperature=81, power=301.5)
    write_description(description, gpus)
    (sample,) = plugin.sample(["GPU-1"])
    assert (sample.util_percent, sample.mem_used_bytes) == (97, 70 * GIB)
    assert sample.extra == {"temperature_c": 81, "power_w": 301.5}


def test_a_gpu_failing_a_sample_is_skipped_and_marked(tmp_path: Path) -> None:
    description = write_description(tmp_path / "gpus.json", two_gpus())
    plugin = CudaPlugin(FakeNvml.from_path(description))
    write_description(description, two_gpus(failing=0))
    assert [sample.device_id for sample in plugin.sample()] == ["GPU-1"]
    assert plugin.capacity()[SLOT_DEVICE] == 1


def test_open_nvml_picks_the_fake_from_the_environment(tmp_path: Path) -> None:
    description = write_description(tmp_path / "gpus.json", two_gpus())
    nvml = open_nvml({FAKE_NVML_ENV: str(description)})
    assert isinstance(nvml, FakeNvml)
    assert nvml.device_count() == 2
    assert isinstance(open_nvml({}), PynvmlNvml)


def test_fake_description_rejects_unknown_fields() -> None:
    with pytest.raises(ValueError, match="memory_totl"):
        FakeNvml.from_dict({"gpus": [{"uuid": "GPU-0", "memory_totl": 1}]})
    with pytest.raises(ValueError, match="uuid"):
        FakeNvml.from_dict({"gpus": [{"name": "no uuid"}]})


def run_standalone(env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    """The report as the GPU machines run it: no site-packages (so no grpc, no pydantic),
    only services/ on the path."""
    return subprocess.run(
        [sys.executable, "-S", "-m", "bai.agent.resources.cuda"],
        env={"PATH": os.environ.get("PATH", ""), "PYTHONPATH": str(REPO / "services"), **env},
        capture_output=True,
        text=True,
        check=False,
        timeout=60,
    )


def test_standalone_report_over_the_fake(tmp_path: Path) -> None:
    description = write_description(tmp_path / "gpus.json", two_gpus())
    result = run_standalone({FAKE_NVML_ENV: str(description)})
    assert result.returncode == 0, result.stderr
    report = json.loads(result.stdout)
    assert report["status"]["state"] == "healthy"
    assert report["capacity"] == {SLOT_DEVICE: "2", SLOT_SHARES: "2"}
    assert report["allocation_whole"]["environ"]["CUDA_VISIBLE_DEVICES"] == "GPU-0"
    assert report["allocation_half"]["shares"][0]["amount"] == "0.5"
    assert report["checks"] == {
        "whole_takes_1": True,
        "whole_released": True,
        "half_takes_0.5": True,
        "half_released": True,
        "sampled_every_device": True,
    }
    assert [sample["device_id"] for sample in report["sample"]] == ["GPU-0", "GPU-1"]


def test_standalone_report_without_nvml_says_unavailable() -> None:
    result = run_standalone({})
    assert result.returncode == 1, result.stderr
    report = json.loads(result.stdout)
    assert report["status"]["state"] == "unavailable"
    assert "grpc" not in result.stderr
