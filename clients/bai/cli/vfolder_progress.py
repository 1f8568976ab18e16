"""A one-line progress bar for file transfers, on stderr when it is a terminal.

    bar = TransferBar("model.bin")
    upload_file(..., progress=bar)
    bar.close()

It redraws at most ten times a second (and at the end), so that a fast transfer
spends its time moving bytes; the SDK may call it from another thread. Without a
terminal (pipes, CI logs, --json) it draws nothing.
"""

from __future__ import annotations

import sys
import threading
import time
from typing import TextIO

from bai.cli.units import format_size

WIDTH = 24
REDRAW_EVERY = 0.1


def bar_text(label: str, done: int, total: int, elapsed: float) -> str:
    """``"model.bin [#########.......]  40% 4m/10m 2m/s"``; no bar while total is unknown."""
    rate = f"{format_size(int(done / elapsed))}/s" if elapsed > 0 else "-"
    if total <= 0:
        return f"{label} {format_size(done)} {rate}"
    fraction = min(1.0, done / total)
    filled = int(WIDTH * fraction)
    bar = "#" * filled + "." * (WIDTH - filled)
    return f"{label} [{bar}] {fraction:4.0%} {format_size(done)}/{format_size(total)} {rate}"


class TransferBar:
    def __init__(self, label: str, stream: TextIO | None = None, enabled: bool | None = None):
        self.label = label
        self.stream = stream or sys.stderr
        self.enabled = self.stream.isatty() if enabled is None else enabled
        self.started = time.monotonic()
        self._drawn_at = 0.0
        self._width = 0
        self._lock = threading.Lock()

    def __call__(self, done: int, total: int) -> None:
        if not self.enabled:
            return
        now = time.monotonic()
        with self._lock:
            if now - self._drawn_at < REDRAW_EVERY and done != total:
                return
            self._drawn_at = now
            text = bar_text(self.label, done, total, now - self.started)
            pad = " " * max(0, self._width - len(text))
            self._width = len(text)
            self.stream.write(f"\r{text}{pad}")
            self.stream.flush()

    def close(self) -> None:
        """End the bar's line (if one was drawn)."""
        with self._lock:
            if self.enabled and self._width:
                self.stream.write("\n")
                self.stream.flush()
                self._width = 0
