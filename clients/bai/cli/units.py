"""Durations ("30s", "5m", "1h", "1h30m") and sizes ("512m", "1g", "1.5g") on the command line.

Sizes use binary multiples (k = 1024), as Backend.AI does for the mem slot; a
plain number is bytes. A plain duration number is seconds.
"""

from __future__ import annotations

import re
from datetime import timedelta
from decimal import Decimal, InvalidOperation

_NUMBER = re.compile(r"\d+(?:\.\d+)?")
_DURATION_PART = re.compile(r"(\d+(?:\.\d+)?)(ms|s|m|h|d)")
_DURATION_UNIT = {"ms": 0.001, "s": 1, "m": 60, "h": 3600, "d": 86400}
_SIZE = re.compile(r"^(\d+(?:\.\d+)?)\s*([kmgtp]?)(?:i?b)?$", re.IGNORECASE)
_SIZE_MULTIPLIER = {"": 1, "k": 1 << 10, "m": 1 << 20, "g": 1 << 30, "t": 1 << 40, "p": 1 << 50}
_SIZE_SUFFIXES = ("", "k", "m", "g", "t", "p")


def parse_duration(text: str) -> timedelta:
    """``"30s"`` -> 30 seconds; parts add up (``"1h30m"``); a plain number is seconds."""
    value = text.strip().lower()
    if _NUMBER.fullmatch(value):
        return timedelta(seconds=float(value))
    position, seconds = 0, 0.0
    for match in _DURATION_PART.finditer(value):
        if match.start() != position:
            break
        seconds += float(match.group(1)) * _DURATION_UNIT[match.group(2)]
        position = match.end()
    if position == 0 or position != len(value):
        raise ValueError(f"{text!r} is not a duration (e.g. 30s, 5m, 1h, 1h30m)")
    return timedelta(seconds=seconds)


def parse_size(text: str) -> int:
    """``"1.5g"`` -> 1610612736 bytes; ``"512m"``, ``"64k"``, ``"2GiB"``; plain bytes."""
    match = _SIZE.match(text.strip())
    if match is None:
        raise ValueError(f"{text!r} is not a size (e.g. 512m, 1g, 1.5g)")
    try:
        number = Decimal(match.group(1)) * _SIZE_MULTIPLIER[match.group(2).lower()]
    except InvalidOperation as exc:
        raise ValueError(f"{text!r} is not a size (e.g. 512m, 1g, 1.5g)") from exc
    return int(number)


def format_size(size: int) -> str:
    """Bytes as a short binary size: ``1610612736`` -> ``"1.5g"``."""
    value = float(size)
    for suffix in _SIZE_SUFFIXES:
        if abs(value) < 1024 or suffix == _SIZE_SUFFIXES[-1]:
            return f"{value:.1f}".removesuffix(".0") + suffix
        value /= 1024
    raise AssertionError("unreachable")
