"""Reading a sandbox's log.jsonl (written by the supervisor) from where the last read
stopped, so that following a log costs one read of what is new."""

from __future__ import annotations

from datetime import datetime
from pathlib import Path

from bai.agent.runtime.base import LogLine
from bai.agent.runtime.process_state import decode_log_line


class LogReader:
    """Blocking reads of new complete records; call it from a worker thread."""

    def __init__(self, path: Path, since: datetime | None) -> None:
        self.path = path
        self.since = since
        self.offset = 0

    def read_new(self) -> list[LogLine]:
        try:
            with self.path.open("rb") as f:
                f.seek(self.offset)
                data = f.read()
        except FileNotFoundError:
            return []
        # A record still being written has no newline yet: leave it for the next read.
        end = data.rfind(b"\n") + 1
        self.offset += end
        lines = []
        for raw in data[:end].splitlines():
            line = decode_log_line(raw)
            if line is not None and (self.since is None or line.time >= self.since):
                lines.append(line)
        return lines
