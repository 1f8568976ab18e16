"""Slot maps as integer vectors, so that the placement loop compares ints.

Every slot gets a power-of-ten scale large enough that every amount in the
snapshot becomes an integer (mem in bytes keeps scale 1, "0.5" cpu gets 10),
so comparisons and sums are exactly those of the decimals.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from decimal import Context, Decimal, Inexact

from bai.common.slots import Slots

# Wide enough for any amount we scale; Inexact trapped so that a rounding
# would raise instead of deciding on a wrong number.
_EXACT = Context(prec=400, Emax=10**6, Emin=-(10**6), traps=[Inexact])

Vector = tuple[int, ...]


class SlotSpace:
    __slots__ = ("index", "names", "scales")

    def __init__(self, scales: Mapping[str, int]) -> None:
        self.names: tuple[str, ...] = tuple(sorted(scales))
        self.index: dict[str, int] = {name: i for i, name in enumerate(self.names)}
        # Decimal places per slot.
        self.scales: tuple[int, ...] = tuple(scales[name] for name in self.names)

    @classmethod
    def covering(cls, names: Iterable[str], maps: Iterable[Mapping[str, Decimal]]) -> SlotSpace:
        places: dict[str, int] = dict.fromkeys(names, 0)
        for slot_map in maps:
            for slot, value in slot_map.items():
                exponent = value.as_tuple().exponent
                need = -exponent if isinstance(exponent, int) and exponent < 0 else 0
                if need > places.get(slot, -1):
                    places[slot] = need
        return cls(places)

    def __len__(self) -> int:
        return len(self.names)

    def zeros(self) -> list[int]:
        return [0] * len(self.names)

    def vector(self, slots: Mapping[str, Decimal]) -> Vector:
        out = [0] * len(self.names)
        index, scales = self.index, self.scales
        for slot, value in slots.items():
            i = index[slot]
            places = scales[i]
            out[i] = int(value.scaleb(places, _EXACT)) if places else int(value)
        return tuple(out)

    def amount(self, i: int, value: int) -> Decimal:
        places = self.scales[i]
        return Decimal(value).scaleb(-places, _EXACT) if places else Decimal(value)

    def slots(self, vector: Sequence[int]) -> Slots:
        return Slots({self.names[i]: self.amount(i, v) for i, v in enumerate(vector) if v})
