"""The `Range: bytes=...` header of a download, as one [start, end) span.

One range is served with 206; several ranges, or a header that is not a
byte range, are ignored and the whole file is served (RFC 9110 lets a server
do so). A range that starts beyond the end is unsatisfiable (416).
"""

from __future__ import annotations


class Unsatisfiable(Exception):
    """The range starts at or beyond the end of a `size`-byte file."""

    def __init__(self, size: int) -> None:
        super().__init__(f"range not satisfiable for {size} bytes")
        self.size = size


def requested_span(header: str | None, size: int) -> tuple[int, int] | None:
    """[start, end) asked for by `header`, or None for the whole file."""
    if not header:
        return None
    unit, _, spec = header.partition("=")
    if unit.strip().lower() != "bytes" or "," in spec:
        return None
    first, dash, last = spec.strip().partition("-")
    if not dash:
        return None
    try:
        if not first:  # the final `last` bytes
            suffix = int(last)
            if suffix <= 0:
                raise Unsatisfiable(size)
            return max(size - suffix, 0), size
        start = int(first)
        end = size if not last else min(int(last) + 1, size)
    except ValueError:
        return None
    if start < 0 or (last and int(last) < start):
        return None
    if start >= size:
        raise Unsatisfiable(size)
    return start, end
