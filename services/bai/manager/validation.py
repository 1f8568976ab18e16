"""Input checks shared by the admin API: names, text, slots, paging, masks.

Each check appends FieldViolations to a Violations collector so that one
response lists every bad field at once.
"""

from __future__ import annotations

import re
import uuid
from collections.abc import Iterable, Mapping
from decimal import Decimal, InvalidOperation

from bai.common.errors import FieldViolation, InvalidArgument

NAME_PATTERN = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,63}$")
EMAIL_PATTERN = re.compile(r"^[^@\s\x00-\x1f]{1,64}@[A-Za-z0-9.-]{1,189}\.[A-Za-z]{2,}$")
SLOT_NAME_PATTERN = re.compile(r"^[a-z][a-z0-9_-]{0,31}(\.[a-z][a-z0-9_-]{0,31})?$")
MAX_PAGE_SIZE = 1000
DEFAULT_PAGE_SIZE = 100


class Violations:
    def __init__(self) -> None:
        self.items: list[FieldViolation] = []

    def add(self, field: str, description: str) -> None:
        self.items.append(FieldViolation(field, description))

    def raise_if_any(self) -> None:
        if self.items:
            raise InvalidArgument(self.items)

    def name(self, field: str, value: str) -> None:
        if not NAME_PATTERN.match(value):
            self.add(
                field, "must be 1-64 characters of [A-Za-z0-9._-], starting with a letter or digit"
            )

    def text(self, field: str, value: str, max_len: int, *, required: bool = False) -> None:
        if required and not value.strip():
            self.add(field, "is required")
        elif len(value) > max_len:
            self.add(field, f"must be at most {max_len} characters")
        elif "\x00" in value:
            self.add(field, "must not contain NUL characters")

    def email(self, field: str, value: str) -> None:
        if len(value) > 254 or not EMAIL_PATTERN.match(value):
            self.add(field, "must be an email address")

    def uuid(self, field: str, value: str) -> uuid.UUID | None:
        try:
            return uuid.UUID(value)
        except ValueError:
            self.add(field, "must be a UUID")
            return None

    def slots(self, field: str, slots: Mapping[str, str]) -> dict[str, str]:
        """Canonical decimal strings keyed by slot name; negative is invalid."""
        clean: dict[str, str] = {}
        for key, raw in slots.items():
            if not SLOT_NAME_PATTERN.match(key):
                self.add(f"{field}[{key[:40]!r}]", "is not a slot name like 'cpu' or 'cuda.device'")
                continue
            try:
                value = Decimal(raw)
            except InvalidOperation:
                self.add(f"{field}[{key}]", "must be a decimal number")
                continue
            if not value.is_finite() or value < 0 or value > Decimal(10) ** 30:
                self.add(f"{field}[{key}]", "must be a finite number between 0 and 1e30")
                continue
            clean[key] = format(value.normalize(), "f")
        return clean

    def int_range(self, field: str, value: int, low: int, high: int) -> None:
        if not low <= value <= high:
            self.add(field, f"must be between {low} and {high}")

    def page_size(self, value: int) -> int:
        if value == 0:
            return DEFAULT_PAGE_SIZE
        self.int_range("page_size", value, 1, MAX_PAGE_SIZE)
        return value

    def mask(self, paths: Iterable[str], allowed: Iterable[str]) -> list[str]:
        allowed_set = set(allowed)
        chosen = list(paths)
        if not chosen:
            self.add("update_mask", f"name at least one of: {', '.join(sorted(allowed_set))}")
        for path in chosen:
            if path not in allowed_set:
                self.add("update_mask", f"{path[:64]!r} cannot be updated")
        # Only known paths go on, so callers may index by them safely.
        return [p for p in dict.fromkeys(chosen) if p in allowed_set]

    def request_id(self, value: str) -> None:
        if value and not re.fullmatch(r"[A-Za-z0-9_-]{1,64}", value):
            self.add("request_id", "must be 1-64 characters of [A-Za-z0-9_-]")
