"""Where a run's CPU went: the whole machine, and chosen processes (Linux /proc).

A bench that shares its machine with the database and its own load generator
cannot tell from its rate alone whether the system under test or the rest of
the machine ran out of cores. A Ledger sampled before and after the run says
how many CPU-seconds each part took, so the rate can be read against what the
machine had left.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

_TICK = os.sysconf("SC_CLK_TCK")


def machine_busy_seconds() -> float:
    """CPU-seconds all cores spent not idle (nor waiting on I/O) since boot."""
    fields = [int(v) for v in Path("/proc/stat").read_text().split("\n", 1)[0].split()[1:]]
    idle = fields[3] + fields[4]
    return (sum(fields[:8]) - idle) / _TICK


def _stat(pid: str) -> tuple[str, list[str]] | None:
    try:
        text = Path(f"/proc/{pid}/stat").read_text()
    except OSError:  # gone between listing and reading
        return None
    head, _, tail = text.rpartition(")")
    return head.partition("(")[2], tail.split()


def process_seconds(pid: int, with_children: bool = False) -> float:
    """User + system CPU of one process (and of its reaped children, if asked)."""
    stat = _stat(str(pid))
    if stat is None:
        return 0.0
    fields = stat[1]
    used = int(fields[11]) + int(fields[12])
    if with_children:
        used += int(fields[13]) + int(fields[14])
    return used / _TICK


def command_seconds(comm: str) -> float:
    """CPU of every live process named `comm`, plus what their reaped children used
    (PostgreSQL's postmaster accounts for backends that exited)."""
    total = 0.0
    for pid in os.listdir("/proc"):
        if not pid.isdigit():
            continue
        stat = _stat(pid)
        if stat is not None and stat[0] == comm:
            fields = stat[1]
            total += sum(int(fields[i]) for i in (11, 12, 13, 14)) / _TICK
    return total


@dataclass(frozen=True)
class Sample:
    machine: float
    parts: dict[str, float]


class Ledger:
    """Samples the machine and named parts: a part is a pid or a command name."""

    def __init__(self, parts: dict[str, int | str]) -> None:
        self._parts = parts

    def sample(self) -> Sample:
        parts = {
            name: process_seconds(what) if isinstance(what, int) else command_seconds(what)
            for name, what in self._parts.items()
        }
        return Sample(machine_busy_seconds(), parts)

    @staticmethod
    def spent(before: Sample, after: Sample) -> dict[str, float]:
        """CPU-seconds per part between two samples; "other" is the machine's rest."""
        spent = {name: after.parts[name] - before.parts[name] for name in after.parts}
        machine = after.machine - before.machine
        spent["other"] = max(0.0, machine - sum(spent.values()))
        spent["machine"] = machine
        return spent
