"""Per-sandbox cgroups for the process runtime, on cgroup v1 or v2.

v1 (controllers mounted one per directory, e.g. /sys/fs/cgroup/memory): the
sandbox gets `<mount>/<parent>/<sandbox id>` in every controller it uses (cpu,
cpuacct, memory, blkio, pids), and its processes join all of them. v2 (one
unified tree with a `memory` controller in cgroup.controllers): one directory
`<mount>/<parent>/<sandbox id>`, with the controllers enabled down the path.
A hybrid host (v1 controllers plus an empty v2 tree, as systemd sets up) is v1.

Usage counters are read by `bai.agent.runtime.cgroups` (shared with the Docker
runtime); this module creates, limits, empties and removes the cgroups, and
reads the OOM kill counter.
"""

from __future__ import annotations

import os
import signal
import time
from dataclasses import dataclass
from decimal import Decimal
from pathlib import Path
from typing import Literal

CPU_PERIOD_US = 100_000
# The kernel refuses quotas under 1 ms.
MIN_CPU_QUOTA_US = 1_000

V1_CONTROLLERS = ("cpu", "cpuacct", "memory", "blkio", "pids")
V2_CONTROLLERS = ("cpu", "memory", "io", "pids")


class CgroupError(Exception):
    """The cgroup could not be created, limited or removed."""


@dataclass(frozen=True)
class CgroupLayout:
    """Where the controllers live. v1: controller name -> mount point; v2: {"": mount}."""

    version: Literal[1, 2]
    mounts: dict[str, Path]


def parse_cgroup_mounts(mounts_text: str, v2_controllers: str | None) -> CgroupLayout | None:
    """Pick the layout from /proc/mounts text. `v2_controllers` is the content of the
    unified mount's cgroup.controllers (None when unreadable); a v2 tree counts only
    when it offers the memory controller (else it is the empty half of a hybrid host)."""
    v1: dict[str, Path] = {}
    v2_mount: Path | None = None
    for line in mounts_text.splitlines():
        fields = line.split()
        if len(fields) < 4:
            continue
        mount_point, fstype, options = Path(fields[1]), fields[2], fields[3].split(",")
        if fstype == "cgroup":
            for controller in V1_CONTROLLERS:
                if controller in options:
                    v1.setdefault(controller, mount_point)
        elif fstype == "cgroup2":
            v2_mount = mount_point
    if "memory" in v1:
        return CgroupLayout(version=1, mounts=v1)
    if v2_mount is not None and "memory" in (v2_controllers or "").split():
        return CgroupLayout(version=2, mounts={"": v2_mount})
    return None


def detect_layout() -> CgroupLayout | None:
    """The host's layout, or None when no usable memory controller is mounted."""
    mounts_text = Path("/proc/mounts").read_text()
    v2_controllers: str | None = None
    for line in mounts_text.splitlines():
        fields = line.split()
        if len(fields) >= 3 and fields[2] == "cgroup2":
            try:
                v2_controllers = (Path(fields[1]) / "cgroup.controllers").read_text()
            except OSError:
                v2_controllers = None
    return parse_cgroup_mounts(mounts_text, v2_controllers)


def cpu_quota_us(cpu_limit: Decimal) -> int | None:
    """CFS quota per CPU_PERIOD_US for `cpu_limit` cores; None = unlimited."""
    if cpu_limit <= 0:
        return None
    return max(MIN_CPU_QUOTA_US, int(cpu_limit * CPU_PERIOD_US))


def parse_flat_keyed(text: str) -> dict[str, int]:
    """'key value' lines (memory.events, memory.oom_control)."""
    values: dict[str, int] = {}
    for line in text.splitlines():
        parts = line.split()
        if len(parts) == 2 and parts[1].lstrip("-").isdigit():
            values[parts[0]] = int(parts[1])
    return values


def _read(path: Path) -> str:
    try:
        return path.read_text()
    except OSError:
        return ""


def _write(path: Path, value: str) -> None:
    try:
        path.write_text(value)
    except OSError as e:
        raise CgroupError(f"cannot write {value!r} to {path}: {e}") from e


@dataclass(frozen=True)
class SandboxCgroup:
    """The cgroup directories of one sandbox (they may not exist yet)."""

    layout: CgroupLayout
    relative: str

    @classmethod
    def for_sandbox(cls, layout: CgroupLayout, parent: str, sandbox_id: str) -> SandboxCgroup:
        return cls(layout=layout, relative=f"{parent}/{sandbox_id}")

    def dir(self, controller: str) -> Path | None:
        """The directory holding `controller`'s files (v2: the one directory)."""
        if self.layout.version == 2:
            return self.layout.mounts[""] / self.relative
        mount = self.layout.mounts.get(controller)
        return None if mount is None else mount / self.relative

    def dirs(self) -> list[Path]:
        """Every directory of this cgroup, one per distinct mount."""
        mounts = sorted(set(self.layout.mounts.values()))
        return [mount / self.relative for mount in mounts]

    def procs_files(self) -> list[str]:
        """The cgroup.procs files a process writes its pid to, to join the sandbox."""
        return [str(d / "cgroup.procs") for d in self.dirs()]

    def exists(self) -> bool:
        main = self.dir("memory")
        return main is not None and main.is_dir()

    def create(self, cpu_limit: Decimal, mem_limit: int) -> None:
        """Create the directories and apply the limits (0 = unlimited)."""
        if self.layout.version == 2:
            self._enable_v2_controllers()
        for d in self.dirs():
            try:
                d.mkdir(parents=True, exist_ok=True)
            except OSError as e:
                raise CgroupError(f"cannot create cgroup {d}: {e}") from e
        if self.layout.version == 1:
            self._limit_v1(cpu_limit, mem_limit)
        else:
            self._limit_v2(cpu_limit, mem_limit)

    def _enable_v2_controllers(self) -> None:
        # Controllers must be enabled in every ancestor's subtree_control.
        root = self.layout.mounts[""]
        wanted = [c for c in V2_CONTROLLERS if c in _read(root / "cgroup.controllers").split()]
        current = root
        for part in self.relative.split("/")[:-1]:
            enabled = _read(current / "cgroup.subtree_control").split()
            missing = [c for c in wanted if c not in enabled]
            if missing:
                _write(current / "cgroup.subtree_control", " ".join(f"+{c}" for c in missing))
            current = current / part
            current.mkdir(exist_ok=True)
        enabled = _read(current / "cgroup.subtree_control").split()
        missing = [c for c in wanted if c not in enabled]
        if missing:
            _write(current / "cgroup.subtree_control", " ".join(f"+{c}" for c in missing))

    def _limit_v1(self, cpu_limit: Decimal, mem_limit: int) -> None:
        cpu = self.dir("cpu")
        quota = cpu_quota_us(cpu_limit)
        if cpu is not None:
            _write(cpu / "cpu.cfs_period_us", str(CPU_PERIOD_US))
            _write(cpu / "cpu.cfs_quota_us", str(-1 if quota is None else quota))
        elif quota is not None:
            raise CgroupError("a cpu limit was asked for but the cpu controller is not mounted")
        memory = self.dir("memory")
        if memory is not None and mem_limit > 0:
            _write(memory / "memory.limit_in_bytes", str(mem_limit))
            # Without swap accounting the limit could be dodged by swapping.
            if (memory / "memory.memsw.limit_in_bytes").exists():
                _write(memory / "memory.memsw.limit_in_bytes", str(mem_limit))

    def _limit_v2(self, cpu_limit: Decimal, mem_limit: int) -> None:
        d = self.layout.mounts[""] / self.relative
        quota = cpu_quota_us(cpu_limit)
        if (d / "cpu.max").exists():
            _write(d / "cpu.max", f"{'max' if quota is None else quota} {CPU_PERIOD_US}")
        elif quota is not None:
            raise CgroupError("a cpu limit was asked for but the cpu controller is not enabled")
        if mem_limit > 0:
            _write(d / "memory.max", str(mem_limit))
            if (d / "memory.swap.max").exists():
                _write(d / "memory.swap.max", "0")

    def pids(self) -> list[int]:
        main = self.dir("memory")
        if main is None:
            return []
        return [int(p) for p in _read(main / "cgroup.procs").split() if p.isdigit()]

    def kill_all(self, timeout: float = 10.0) -> None:
        """SIGKILL every process in the cgroup and wait until they are gone (reaped)."""
        d = self.dir("memory")
        if d is not None and self.layout.version == 2 and (d / "cgroup.kill").exists():
            _write(d / "cgroup.kill", "1")
        deadline = time.monotonic() + timeout
        while True:
            pids = self.pids()
            if not pids:
                return
            # v1 has no cgroup.kill: kill what is listed, again, until nothing is left
            # (a fork racing the first pass is caught by the next).
            for pid in pids:
                try:
                    os.kill(pid, signal.SIGKILL)
                except ProcessLookupError:
                    pass
            if time.monotonic() > deadline:
                raise CgroupError(f"processes {pids} survived SIGKILL in {self.relative}")
            time.sleep(0.02)

    def remove(self, timeout: float = 5.0) -> None:
        """Remove the directories (idempotent); the cgroup must be empty."""
        deadline = time.monotonic() + timeout
        for d in self.dirs():
            while d.exists():
                try:
                    d.rmdir()
                except FileNotFoundError:
                    break
                except OSError as e:
                    # EBUSY while the last killed processes are being reaped.
                    if time.monotonic() > deadline:
                        raise CgroupError(f"cannot remove cgroup {d}: {e}") from e
                    time.sleep(0.02)

    def oom_kills(self) -> int:
        """Processes killed by the OOM killer in this cgroup since it was created."""
        d = self.dir("memory")
        if d is None:
            return 0
        name = "memory.oom_control" if self.layout.version == 1 else "memory.events"
        return parse_flat_keyed(_read(d / name)).get("oom_kill", 0)
