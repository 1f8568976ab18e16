"""Property: over any sequence of allocations and releases, no device is over-allocated
and the books balance; a restart that restores every kernel sees the same node."""

from __future__ import annotations

from collections import defaultdict
from decimal import Decimal

from hypothesis import given, settings
from hypothesis import strategies as st

from bai.agent.resources.allocator import NodeAllocator, from_json, to_json
from bai.agent.resources.cpu import CpuPlugin
from bai.agent.resources.cuda import SLOT_DEVICE, SLOT_SHARES
from bai.agent.resources.mem import MemPlugin
from bai.agent.resources.plugin import Allocation, AllocationFailed
from bai.common.slots import Slots
from tests.agent.resources.fakes import cuda_plugin

CORES = [0, 1, 2, 3]
GPUS = 3
MEM = 16
ONE = Decimal(1)

requests = st.fixed_dictionaries(
    {
        "cpu": st.sampled_from(["0", "0.25", "0.5", "1", "2", "3"]),
        "mem": st.integers(0, 8).map(str),
        SLOT_DEVICE: st.integers(0, 2).map(str),
        SLOT_SHARES: st.integers(0, 25).map(lambda tenths: str(Decimal(tenths) / 10)),
    }
).map(Slots)
kernels = st.sampled_from([f"k{i}" for i in range(6)])
operations = st.lists(
    st.one_of(
        st.tuples(st.just("allocate"), kernels, requests),
        st.tuples(st.just("release"), kernels, st.just(Slots())),
    ),
    max_size=40,
)


def build(allow_fragmentation: bool) -> NodeAllocator:
    return NodeAllocator(
        [
            CpuPlugin(cores=CORES, pinning=True),
            MemPlugin(total=MEM),
            cuda_plugin(GPUS, allow_fragmentation=allow_fragmentation),
        ]
    )


def held(allocator: NodeAllocator) -> list[Allocation]:
    return [a for kernel in allocator.kernel_ids() for a in allocator.allocations(kernel) or []]


def check_books(allocator: NodeAllocator) -> None:
    capacity = allocator.capacity().get_amount
    free = allocator.free().get_amount
    occupied = allocator.occupied().get_amount
    for slot in ("cpu", "mem"):
        assert free(slot) + occupied(slot) == capacity(slot)
        assert free(slot) >= 0
    # A whole GPU is also one unit of shares nobody else can have.
    assert free(SLOT_SHARES) + occupied(SLOT_SHARES) + occupied(SLOT_DEVICE) == capacity(
        SLOT_SHARES
    )

    whole: dict[str, int] = defaultdict(int)
    fractions: dict[str, Decimal] = defaultdict(Decimal)
    pinned: dict[str, int] = defaultdict(int)
    for allocation in held(allocator):
        by_slot: dict[str, Decimal] = defaultdict(Decimal)
        for share in allocation.shares:
            by_slot[share.slot] += share.amount
            if share.slot == SLOT_DEVICE:
                whole[share.device_id] += 1
            elif share.slot == SLOT_SHARES:
                fractions[share.device_id] += share.amount
            else:
                pinned[share.device_id] += 1
        if allocation.plugin == "cuda":
            assert dict(by_slot) == allocation.slots  # shares add up to the request
    for device in set(whole) | set(fractions):
        assert whole[device] <= 1
        assert fractions[device] <= ONE
        assert not (whole[device] and fractions[device])
    assert all(count <= 1 for count in pinned.values())
    untouched = GPUS - len(set(whole) | set(fractions))
    assert free(SLOT_DEVICE) == untouched


@settings(max_examples=150, deadline=None)
@given(ops=operations, allow_fragmentation=st.booleans())
def test_random_sequences_keep_the_books(
    ops: list[tuple[str, str, Slots]], allow_fragmentation: bool
) -> None:
    allocator = build(allow_fragmentation)
    for action, kernel_id, request in ops:
        if action == "release":
            allocator.release(kernel_id)
        elif allocator.allocations(kernel_id) is None:
            before = allocator.free()
            try:
                allocator.allocate(kernel_id, request)
            except AllocationFailed as failure:
                assert failure.requested > failure.free
                assert request[failure.slot] == failure.requested
                assert allocator.free() == before
            else:
                assert request.nonzero().only(["cpu", "mem"]).fits_in(before)
        check_books(allocator)

    restarted = build(allow_fragmentation)
    for kernel_id in allocator.kernel_ids():
        stored = [to_json(a) for a in allocator.allocations(kernel_id) or []]
        restarted.restore(kernel_id, [from_json(item) for item in stored])
        restarted.restore(kernel_id, [from_json(item) for item in stored])
    assert restarted.free() == allocator.free()
    assert restarted.occupied() == allocator.occupied()
    check_books(restarted)
