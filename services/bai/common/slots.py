"""Resource slots: exact decimal arithmetic over slot-name -> amount maps.

Slots travel as canonical decimal strings (`ResourceSlots.slots`); inside a
service they are `Slots`, an immutable mapping to `Decimal`, so that the
scheduler, the agent's allocator and quota checks never round. A missing slot
is zero. Importable without grpc or the rest of bai (the agent's plugins and
the scheduler bench use it alone).
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator, Mapping
from decimal import Decimal, InvalidOperation

ZERO = Decimal(0)


def canonical(value: Decimal) -> str:
    """The wire form: no exponent, no trailing zeros ("2", "0.5", "1073741824")."""
    if value == 0:
        return "0"
    return format(value.normalize(), "f")


class SlotParseError(ValueError):
    def __init__(self, slot: str, raw: str) -> None:
        super().__init__(f"slot {slot!r}: {raw!r} is not a decimal number")
        self.slot = slot
        self.raw = raw


class Slots(Mapping[str, Decimal]):
    """An immutable, hashable slot map; arithmetic treats missing slots as zero."""

    __slots__ = ("_hash", "_items")

    def __init__(self, items: Mapping[str, Decimal | int | str] | None = None) -> None:
        clean: dict[str, Decimal] = {}
        for key, raw in (items or {}).items():
            try:
                value = raw if isinstance(raw, Decimal) else Decimal(raw)
            except InvalidOperation as exc:
                raise SlotParseError(key, str(raw)) from exc
            if not value.is_finite():
                raise SlotParseError(key, str(raw))
            clean[key] = value
        self._items = clean
        self._hash: int | None = None

    @classmethod
    def from_wire(cls, slots: Mapping[str, str]) -> Slots:
        return cls(slots)

    def to_wire(self) -> dict[str, str]:
        return {key: canonical(value) for key, value in sorted(self._items.items())}

    def __getitem__(self, key: str) -> Decimal:
        return self._items[key]

    def get_amount(self, key: str) -> Decimal:
        return self._items.get(key, ZERO)

    def __iter__(self) -> Iterator[str]:
        return iter(self._items)

    def __len__(self) -> int:
        return len(self._items)

    def __hash__(self) -> int:
        if self._hash is None:
            self._hash = hash(frozenset((k, v) for k, v in self._items.items() if v != 0))
        return self._hash

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, Mapping):
            return NotImplemented
        keys = set(self._items) | set(other)
        return all(self.get_amount(k) == Decimal(other.get(k, 0)) for k in keys)

    def __repr__(self) -> str:
        return f"Slots({self.to_wire()!r})"

    def __add__(self, other: Mapping[str, Decimal]) -> Slots:
        keys = set(self._items) | set(other)
        return Slots({k: self.get_amount(k) + other.get(k, ZERO) for k in keys})

    def __sub__(self, other: Mapping[str, Decimal]) -> Slots:
        keys = set(self._items) | set(other)
        return Slots({k: self.get_amount(k) - other.get(k, ZERO) for k in keys})

    def scaled(self, factor: int | Decimal) -> Slots:
        return Slots({k: v * factor for k, v in self._items.items()})

    def fits_in(self, capacity: Mapping[str, Decimal]) -> bool:
        """Every requested amount is at most what `capacity` has (missing: zero)."""
        return all(v <= capacity.get(k, ZERO) for k, v in self._items.items() if v > 0)

    def shortfalls(self, capacity: Mapping[str, Decimal]) -> dict[str, tuple[Decimal, Decimal]]:
        """Slots where the request exceeds `capacity`: slot -> (requested, available)."""
        return {
            k: (v, capacity.get(k, ZERO))
            for k, v in sorted(self._items.items())
            if v > 0 and v > capacity.get(k, ZERO)
        }

    def nonzero(self) -> Slots:
        return Slots({k: v for k, v in self._items.items() if v != 0})

    def only(self, keys: Iterable[str]) -> Slots:
        wanted = set(keys)
        return Slots({k: v for k, v in self._items.items() if k in wanted})


def total(items: Iterable[Mapping[str, Decimal]]) -> Slots:
    result = Slots()
    for item in items:
        result = result + item
    return result
