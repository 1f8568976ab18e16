"""Small statistics for the benches: percentiles of samples and a table line."""

from __future__ import annotations

import math
import statistics
from collections.abc import Sequence


def percentile(samples: Sequence[float], q: float) -> float:
    """Nearest-rank percentile (q in 0..100); works for a single sample."""
    if not samples:
        return math.nan
    ordered = sorted(samples)
    rank = max(1, math.ceil(q / 100 * len(ordered)))
    return ordered[rank - 1]


def p50(samples: Sequence[float]) -> float:
    return statistics.median(samples) if samples else math.nan


def summary_line(name: str, samples_ms: Sequence[float]) -> str:
    worst = max(samples_ms, default=math.nan)
    return (
        f"{name:<34} n={len(samples_ms):<4} p50 {p50(samples_ms):8.1f} ms"
        f"  p95 {percentile(samples_ms, 95):8.1f} ms  max {worst:8.1f} ms"
    )


def rounded(value: float, digits: int = 2) -> float | None:
    """JSON-safe: NaN (no samples) becomes null."""
    return None if math.isnan(value) else round(value, digits)
