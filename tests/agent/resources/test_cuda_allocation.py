"""Where the CUDA plugin puts whole GPUs and fractions, table-driven over fake GPUs."""

from __future__ import annotations

from dataclasses import dataclass
from decimal import Decimal

import pytest

from bai.agent.resources.cuda import SLOT_DEVICE, SLOT_SHARES, CudaPlugin
from bai.agent.resources.plugin import AllocationFailed, DeviceShare, InvalidRequest
from tests.agent.resources.fakes import cuda_plugin, dec, fake_nvml

DEV = SLOT_DEVICE
SHR = SLOT_SHARES


@dataclass(frozen=True)
class Fails:
    slot: str
    requested: str
    free: str


Placed = list[tuple[str, str, str]]  # (device, slot, amount)
Step = tuple[str, dict[str, str], Placed | Fails]

CASES: list[tuple[str, int, bool, list[Step]]] = [
    (
        "whole devices go lowest first until none is left",
        3,
        True,
        [
            ("k1", {DEV: "2"}, [("GPU-0", DEV, "1"), ("GPU-1", DEV, "1")]),
            ("k2", {DEV: "1"}, [("GPU-2", DEV, "1")]),
            ("k3", {DEV: "1"}, Fails(DEV, "1", "0")),
        ],
    ),
    (
        "fractions fill the partly used device they fit tightest",
        2,
        True,
        [
            ("k1", {SHR: "0.5"}, [("GPU-0", SHR, "0.5")]),
            ("k2", {SHR: "0.3"}, [("GPU-0", SHR, "0.3")]),
            ("k3", {SHR: "0.5"}, [("GPU-1", SHR, "0.5")]),
            ("k4", {SHR: "0.2"}, [("GPU-0", SHR, "0.2")]),
            ("k5", {SHR: "0.5"}, [("GPU-1", SHR, "0.5")]),
        ],
    ),
    (
        "a device holding a fraction is not given whole",
        2,
        True,
        [
            ("k1", {SHR: "0.1"}, [("GPU-0", SHR, "0.1")]),
            ("k2", {DEV: "1"}, [("GPU-1", DEV, "1")]),
            ("k3", {DEV: "1"}, Fails(DEV, "1", "0")),
        ],
    ),
    (
        "a device given whole takes no fractions",
        2,
        True,
        [
            ("k1", {DEV: "1"}, [("GPU-0", DEV, "1")]),
            ("k2", {SHR: "1"}, [("GPU-1", SHR, "1")]),
            ("k3", {SHR: "0.1"}, Fails(SHR, "0.1", "0")),
        ],
    ),
    (
        "fragmentation off: a fraction must fit on one device",
        2,
        False,
        [
            ("k1", {SHR: "0.6"}, [("GPU-0", SHR, "0.6")]),
            ("k2", {SHR: "0.6"}, [("GPU-1", SHR, "0.6")]),
            ("k3", {SHR: "0.6"}, Fails(SHR, "0.6", "0.4")),
        ],
    ),
    (
        "fragmentation on: a fraction that fits nowhere whole is spread",
        2,
        True,
        [
            ("k1", {SHR: "0.6"}, [("GPU-0", SHR, "0.6")]),
            ("k2", {SHR: "0.6"}, [("GPU-1", SHR, "0.6")]),
            ("k3", {SHR: "0.6"}, [("GPU-0", SHR, "0.4"), ("GPU-1", SHR, "0.2")]),
            ("k4", {SHR: "0.3"}, Fails(SHR, "0.3", "0.2")),
        ],
    ),
    (
        "fragmentation on still keeps a fraction on one device when it fits",
        2,
        True,
        [
            ("k1", {SHR: "0.7"}, [("GPU-0", SHR, "0.7")]),
            ("k2", {SHR: "0.5"}, [("GPU-1", SHR, "0.5")]),
        ],
    ),
    (
        "over one share: whole units plus the remainder on a partly used device",
        3,
        False,
        [
            ("k1", {SHR: "0.5"}, [("GPU-0", SHR, "0.5")]),
            ("k2", {SHR: "1.5"}, [("GPU-0", SHR, "0.5"), ("GPU-1", SHR, "1")]),
            ("k3", {SHR: "1.5"}, Fails(SHR, "1.5", "1")),
            ("k4", {SHR: "1"}, [("GPU-2", SHR, "1")]),
        ],
    ),
    (
        "mixed whole device and fraction in one request",
        2,
        True,
        [
            ("k1", {DEV: "1", SHR: "0.5"}, [("GPU-0", DEV, "1"), ("GPU-1", SHR, "0.5")]),
            ("k2", {SHR: "0.5"}, [("GPU-1", SHR, "0.5")]),
            ("k3", {DEV: "1"}, Fails(DEV, "1", "0")),
        ],
    ),
    (
        "a mixed request whose fraction cannot be met takes nothing",
        2,
        True,
        [
            ("k1", {SHR: "0.8"}, [("GPU-0", SHR, "0.8")]),
            ("k2", {DEV: "1", SHR: "0.5"}, Fails(SHR, "0.5", "0.2")),
            ("k3", {DEV: "1"}, [("GPU-1", DEV, "1")]),
        ],
    ),
]


@pytest.mark.parametrize(
    ("gpus", "fragmentation", "steps"),
    [pytest.param(gpus, frag, steps, id=name) for name, gpus, frag, steps in CASES],
)
def test_placement(gpus: int, fragmentation: bool, steps: list[Step]) -> None:
    plugin = cuda_plugin(gpus, allow_fragmentation=fragmentation)
    for kernel_id, request, expected in steps:
        amounts = {slot: dec(amount) for slot, amount in request.items()}
        if isinstance(expected, Fails):
            before = plugin.free()
            with pytest.raises(AllocationFailed) as failure:
                plugin.allocate(kernel_id, amounts)
            got = (failure.value.slot, failure.value.requested, failure.value.free)
            assert got == (expected.slot, dec(expected.requested), dec(expected.free))
            assert plugin.free() == before
        else:
            allocation = plugin.allocate(kernel_id, amounts)
            assert allocation.shares == tuple(
                DeviceShare(device, slot, dec(amount)) for device, slot, amount in expected
            )
            assert allocation.slots == amounts


def test_release_frees_exactly_what_the_kernel_held() -> None:
    plugin = cuda_plugin(2)
    plugin.allocate("k1", {DEV: dec(1)})
    plugin.allocate("k2", {SHR: dec("0.25")})
    plugin.allocate("k3", {SHR: dec("0.25")})
    assert plugin.free() == {DEV: 0, SHR: dec("0.5")}
    plugin.release("k2")
    assert plugin.free() == {DEV: 0, SHR: dec("0.75")}
    plugin.release("k2")  # idempotent
    plugin.release("k3")
    assert plugin.free() == {DEV: 1, SHR: 1}
    plugin.release("k1")
    assert plugin.free() == plugin.capacity() == {DEV: 2, SHR: 2}


def test_environ_and_device_nodes_name_the_allocated_gpus() -> None:
    nvml = fake_nvml(3)
    for gpu, minor in zip(nvml.gpus, (4, 7, 9), strict=True):
        gpu.minor = minor
    plugin = CudaPlugin(nvml)
    plugin.allocate("k0", {DEV: dec(1)})
    allocation = plugin.allocate("k1", {DEV: dec(1), SHR: dec("0.5")})
    assert allocation.environ == {
        "CUDA_VISIBLE_DEVICES": "GPU-1,GPU-2",
        "NVIDIA_VISIBLE_DEVICES": "GPU-1,GPU-2",
        "BAI_CUDA_SHARES": "GPU-2=0.5",
    }
    assert allocation.device_paths == (
        "/dev/nvidia7",
        "/dev/nvidia9",
        "/dev/nvidiactl",
        "/dev/nvidia-uvm",
    )
    by_index = CudaPlugin(fake_nvml(2), visible_by="index")
    by_index.allocate("k0", {SHR: dec("0.5")})
    assert by_index.allocate("k1", {DEV: dec(1)}).environ["CUDA_VISIBLE_DEVICES"] == "1"


def test_empty_request_touches_no_gpu() -> None:
    plugin = cuda_plugin(1)
    allocation = plugin.allocate("k1", {DEV: dec(0)})
    assert (allocation.slots, allocation.environ, allocation.device_paths) == ({}, {}, ())
    assert plugin.free() == plugin.capacity()


@pytest.mark.parametrize(
    ("request_", "slot"),
    [
        ({DEV: "-1"}, DEV),
        ({SHR: "-0.5"}, SHR),
        ({DEV: "0.5"}, DEV),
    ],
)
def test_requests_no_node_could_meet_are_invalid(request_: dict[str, str], slot: str) -> None:
    plugin = cuda_plugin(2)
    with pytest.raises(InvalidRequest) as failure:
        plugin.allocate("k1", {key: dec(value) for key, value in request_.items()})
    assert failure.value.slot == slot
    assert plugin.free() == plugin.capacity()


def test_restore_after_restart_is_idempotent_and_blocks_the_same_gpus() -> None:
    before = cuda_plugin(2)
    whole = before.allocate("k1", {DEV: dec(1)})
    half = before.allocate("k2", {SHR: dec("0.5")})

    after = cuda_plugin(2)
    for _ in range(2):
        after.restore("k1", whole)
        after.restore("k2", half)
    assert after.free() == before.free() == {DEV: 0, SHR: dec("0.5")}
    assert after.held_by_device() == {"GPU-0": 1, "GPU-1": dec("0.5")}
    with pytest.raises(AllocationFailed):
        after.allocate("k3", {DEV: dec(1)})
    after.release("k2")
    assert after.allocate("k3", {DEV: dec(1)}).shares == (DeviceShare("GPU-1", DEV, Decimal(1)),)


def test_restore_of_a_gpu_that_is_gone_occupies_nothing() -> None:
    before = cuda_plugin(2)
    allocation = before.allocate("k1", {DEV: dec(2)})
    after = cuda_plugin(1)
    after.restore("k1", allocation)
    assert after.free() == {DEV: 0, SHR: 0}
    after.release("k1")
    assert after.free() == {DEV: 1, SHR: 1}
