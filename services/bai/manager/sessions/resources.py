"""What a new session asks for, per kernel: pure checks at enqueue time.

The request's slots are completed with the image minimum (cpu and mem are
always present) and checked against the slot names the scaling group's
agents offer and the image's `ai.backend.resource.min.*` / `.max.*` labels.
Label values for mem may carry binary suffixes ("256m", "1g") as upstream
images write them.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from decimal import Decimal, InvalidOperation

from bai.common.errors import FieldViolation, InvalidArgument, ResourceExhausted
from bai.common.image_labels import readable_resource_bounds
from bai.common.slots import Slots, canonical

ALWAYS_KNOWN = frozenset({"cpu", "mem"})
# When the image names no minimum.
FALLBACK_MINIMUM = {"cpu": Decimal(1), "mem": Decimal(1 << 30)}


def kernel_slots(
    requested: Mapping[str, Decimal],
    labels: Mapping[str, str],
    known_slots: Iterable[str],
) -> Slots:
    """The slots each kernel takes: the request completed with image minimums, checked."""
    known = set(known_slots) | ALWAYS_KNOWN
    unknown = sorted(set(requested) - known)
    if unknown:
        error = InvalidArgument(
            [
                FieldViolation(f"resource_slots.slots[{s}]", "no agent of the group offers it")
                for s in unknown
            ],
            reason="UNKNOWN_RESOURCE_SLOT",
        )
        error.metadata["slot"] = unknown[0]
        raise error
    low, high = readable_resource_bounds(labels)
    slots = dict(requested)
    for slot, amount in low.items():
        if slot in known and slot not in slots:
            slots[slot] = amount
    for slot, amount in FALLBACK_MINIMUM.items():
        slots.setdefault(slot, amount)
    for slot, amount in sorted(slots.items()):
        if slot in low and amount < low[slot]:
            _range_error(slot, amount, low.get(slot), high.get(slot))
        if slot in high and amount > high[slot]:
            _range_error(slot, amount, low.get(slot), high.get(slot))
    return Slots({k: v for k, v in slots.items() if v != 0})


def _range_error(slot: str, amount: Decimal, low: Decimal | None, high: Decimal | None) -> None:
    parts = []
    if low is not None:
        parts.append(f"at least {canonical(low)}")
    if high is not None:
        parts.append(f"at most {canonical(high)}")
    error = InvalidArgument(
        [
            FieldViolation(
                f"resource_slots.slots[{slot}]", f"must be {' and '.join(parts)} for this image"
            )
        ],
        reason="RESOURCE_REQUEST_OUT_OF_RANGE",
    )
    error.metadata.update(
        {
            "slot": slot,
            "requested": canonical(amount),
            "min": canonical(low) if low is not None else "",
            "max": canonical(high) if high is not None else "",
        }
    )
    raise error


@dataclass(frozen=True)
class AgentCapacity:
    agent_id: str
    architecture: str
    available: Slots


def require_some_capacity(
    per_kernel: Slots,
    cluster_size: int,
    single_node: bool,
    architecture: str,
    agents: Iterable[AgentCapacity],
) -> None:
    """NO_CAPACITY when the group has live agents but none could ever hold the request.

    A group without live agents is not refused: agents may still register.
    """
    pool = list(agents)
    if not pool:
        return
    fitting_arch = [a for a in pool if a.architecture == architecture]
    need = per_kernel.scaled(cluster_size) if single_node else per_kernel
    if not fitting_arch:
        raise ResourceExhausted(
            f"no agent of architecture {architecture} in the scaling group",
            reason="NO_CAPACITY",
            metadata={"resource": "architecture", "requested": architecture, "available": ""},
        )
    if any(need.fits_in(a.available) for a in fitting_arch):
        return
    best = max(fitting_arch, key=lambda a: len(need) - len(need.shortfalls(a.available)))
    slot, (want, have) = next(iter(need.shortfalls(best.available).items()))
    raise ResourceExhausted(
        f"no agent can ever hold the request: {slot} {canonical(want)} > {canonical(have)}",
        reason="NO_CAPACITY",
        metadata={"resource": slot, "requested": canonical(want), "available": canonical(have)},
    )


def exceeds(limit: Mapping[str, str], used: Slots) -> str | None:
    """The first slot where `used` is over `limit` (a slot missing from the limit is free)."""
    for slot, raw in sorted(limit.items()):
        try:
            cap = Decimal(raw)
        except InvalidOperation:
            continue
        if used.get_amount(slot) > cap:
            return slot
    return None
