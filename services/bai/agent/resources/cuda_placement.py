"""Where GPU requests go: pure functions over each usable GPU's free share.

A GPU's free share is 1 when untouched, 0 when given whole, and 1 minus its
fractions otherwise. Whole-GPU requests take untouched GPUs, lowest first.
A fraction goes on one GPU when it can: the partly used GPU it fits tightest,
else an untouched one; amounts over 1 take untouched GPUs whole plus one GPU
for the remainder. Only with fragmentation allowed is a fraction that fits
nowhere in one piece spread over several GPUs, the most used first.
"""

from __future__ import annotations

from decimal import Decimal

ZERO = Decimal(0)
ONE = Decimal(1)

# (device id, free share) for each usable GPU, in device order.
FreeShares = list[tuple[str, Decimal]]


def place_whole(free: FreeShares, count: int) -> list[str] | None:
    """`count` untouched devices, lowest first; None when there are too few."""
    untouched = [device for device, share in free if share == ONE]
    return untouched[:count] if len(untouched) >= count else None


def place_shares(
    free: FreeShares, amount: Decimal, allow_fragmentation: bool
) -> list[tuple[str, Decimal]] | None:
    """Where `amount` of shares go; None when it cannot be placed."""
    placement = _place_compact(free, amount)
    if placement is None and allow_fragmentation:
        placement = _place_spread(free, amount)
    if placement is None:
        return None
    order = {device: i for i, (device, _) in enumerate(free)}
    return sorted(placement, key=lambda item: order[item[0]])


def _place_compact(free: FreeShares, amount: Decimal) -> list[tuple[str, Decimal]] | None:
    """Whole units on untouched devices and the remainder on one device."""
    whole = int(amount // ONE)
    rest = amount - whole
    untouched = [device for device, share in free if share == ONE]
    partial = sorted(
        (share, i, device) for i, (device, share) in enumerate(free) if rest <= share < ONE
    )
    placement: list[tuple[str, Decimal]] = []
    untouched_needed = whole
    if rest > 0 and partial:
        placement.append((partial[0][2], rest))
    elif rest > 0:
        untouched_needed += 1
    if len(untouched) < untouched_needed:
        return None
    placement += [(device, ONE) for device in untouched[:whole]]
    if untouched_needed > whole:
        placement.append((untouched[whole], rest))
    return placement


def _place_spread(free: FreeShares, amount: Decimal) -> list[tuple[str, Decimal]] | None:
    """Fill the most used devices first, then untouched ones."""
    placement: list[tuple[str, Decimal]] = []
    remaining = amount
    for share, _, device in sorted((s, i, d) for i, (d, s) in enumerate(free) if s > 0):
        take = min(share, remaining)
        placement.append((device, take))
        remaining -= take
        if remaining == 0:
            return placement
    return None


def largest_placeable(free: FreeShares, allow_fragmentation: bool) -> Decimal:
    """The largest cuda.shares request that would succeed now."""
    if allow_fragmentation:
        return sum((share for _, share in free), ZERO)
    untouched = sum(1 for _, share in free if share == ONE)
    return untouched + max((share for _, share in free if share < ONE), default=ZERO)
