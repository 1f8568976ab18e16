"""Per-keypair request rate over a rolling 15-minute window.

A sliding-window counter: two fixed windows in Redis, the previous one
weighted by how much of it still overlaps the rolling window. One INCR and
one GET per call, sent in the authenticator's single pipeline.
"""

from __future__ import annotations

WINDOW_SECONDS = 900
PREFIX = "bai:rate:"


def window_keys(access_key: str, now: float) -> tuple[str, str]:
    """(current window key, previous window key)."""
    index = int(now // WINDOW_SECONDS)
    return f"{PREFIX}{access_key}:{index}", f"{PREFIX}{access_key}:{index - 1}"


def rolling_count(current: int, previous: int, now: float) -> float:
    elapsed = (now % WINDOW_SECONDS) / WINDOW_SECONDS
    return current + previous * (1.0 - elapsed)


def exceeded(limit: int, current: int, previous: int, now: float) -> bool:
    """0 means no limit (only the bootstrap keypair may have it)."""
    return limit > 0 and rolling_count(current, previous, now) > limit
