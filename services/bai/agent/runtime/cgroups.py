"""Reading a sandbox's resource counters straight from cgroup files.

Both hierarchies are supported: cgroup v1 (one mount per controller under
/sys/fs/cgroup: cpuacct, memory, blkio) and v2 (one unified tree). A cgroup is
named by its path relative to the hierarchy root ("docker/<id>",
"system.slice/docker-<id>.scope", "bai/<sandbox>"); `CgroupPaths` turns that
into the directory of each controller. Used by the Docker runtime (docker's
own stats API costs about a second per call) and the process runtime.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

CGROUP_ROOT = Path("/sys/fs/cgroup")
# v1 reports "no limit" as the largest page-aligned signed 64-bit number.
UNLIMITED_THRESHOLD = 1 << 62
# v1 mount points of the cpu, memory and io controllers, in that order.
V1_CONTROLLERS = ("cpuacct", "memory", "blkio")


@dataclass(frozen=True)
class CgroupCounters:
    cpu_used_ns: int
    mem_used_bytes: int
    # 0: no limit.
    mem_limit_bytes: int
    io_read_bytes: int
    io_write_bytes: int


def is_unified(root: Path = CGROUP_ROOT) -> bool:
    """True on cgroup v2 (the unified hierarchy is mounted at the root)."""
    return (root / "cgroup.controllers").exists()


@dataclass(frozen=True)
class CgroupPaths:
    """The directories of one cgroup, per controller."""

    unified: bool
    cpu: Path
    memory: Path
    io: Path

    @classmethod
    def of(cls, relative: str, root: Path = CGROUP_ROOT) -> CgroupPaths:
        relative = relative.strip("/")
        if is_unified(root):
            path = root / relative
            return cls(True, path, path, path)
        cpu, memory, io = (root / controller / relative for controller in V1_CONTROLLERS)
        return cls(False, cpu, memory, io)

    def exists(self) -> bool:
        return self.cpu.is_dir() and self.memory.is_dir()


def pid_cgroup(pid: int, root: Path = CGROUP_ROOT, proc: Path = Path("/proc")) -> str | None:
    """The cgroup (relative path) a process is in, from /proc/<pid>/cgroup."""
    try:
        lines = (proc / str(pid) / "cgroup").read_text().splitlines()
    except OSError:
        return None
    unified = is_unified(root)
    for line in lines:
        _, controllers, path = line.split(":", 2)
        if unified and controllers == "":
            return path
        if not unified and "cpuacct" in controllers.split(","):
            return path
    return None


def docker_cgroup(container_id: str, pid: int | None, root: Path = CGROUP_ROOT) -> CgroupPaths:
    """A container's cgroup: where its main process is, else docker's usual places
    (cgroupfs driver: docker/<id>; systemd driver: system.slice/docker-<id>.scope)."""
    candidates: list[str] = []
    if pid:
        found = pid_cgroup(pid, root)
        if found:
            candidates.append(found)
    candidates += [f"docker/{container_id}", f"system.slice/docker-{container_id}.scope"]
    for relative in candidates:
        paths = CgroupPaths.of(relative, root)
        if paths.exists():
            return paths
    return CgroupPaths.of(candidates[0], root)


def read_counters(paths: CgroupPaths) -> CgroupCounters:
    """Raises OSError when the cgroup is gone (the sandbox has exited)."""
    if paths.unified:
        return _read_v2(paths.cpu)
    return _read_v1(paths)


def _read_v1(paths: CgroupPaths) -> CgroupCounters:
    cpu_ns = _read_int(paths.cpu / "cpuacct.usage")
    usage = _read_int(paths.memory / "memory.usage_in_bytes")
    stat = _read_flat_keyed(paths.memory / "memory.stat")
    limit = _read_int(paths.memory / "memory.limit_in_bytes")
    read, write = _read_blkio_v1(paths.io)
    return CgroupCounters(
        cpu_used_ns=cpu_ns,
        mem_used_bytes=_working_set(usage, stat.get("total_inactive_file", 0)),
        mem_limit_bytes=0 if limit >= UNLIMITED_THRESHOLD else limit,
        io_read_bytes=read,
        io_write_bytes=write,
    )


def _read_v2(path: Path) -> CgroupCounters:
    cpu_stat = _read_flat_keyed(path / "cpu.stat")
    usage = _read_int(path / "memory.current")
    stat = _read_flat_keyed(path / "memory.stat")
    raw_limit = (path / "memory.max").read_text().strip()
    read = write = 0
    io_stat = path / "io.stat"
    if io_stat.exists():
        for line in io_stat.read_text().splitlines():
            fields = dict(item.split("=", 1) for item in line.split()[1:] if "=" in item)
            read += int(fields.get("rbytes", 0))
            write += int(fields.get("wbytes", 0))
    return CgroupCounters(
        cpu_used_ns=cpu_stat.get("usage_usec", 0) * 1000,
        mem_used_bytes=_working_set(usage, stat.get("inactive_file", 0)),
        mem_limit_bytes=0 if raw_limit == "max" else int(raw_limit),
        io_read_bytes=read,
        io_write_bytes=write,
    )


def _working_set(usage: int, inactive_file: int) -> int:
    """Usage without reclaimable page cache, as `docker stats` shows it."""
    return max(usage - inactive_file, 0)


def _read_blkio_v1(path: Path) -> tuple[int, int]:
    # io_service_bytes only counts with the CFQ/BFQ schedulers; throttle.* always does.
    read = write = 0
    for name in ("blkio.throttle.io_service_bytes", "blkio.io_service_bytes"):
        file = path / name
        if not file.exists():
            continue
        for line in file.read_text().splitlines():
            parts = line.split()
            if len(parts) == 3 and parts[1] == "Read":
                read += int(parts[2])
            elif len(parts) == 3 and parts[1] == "Write":
                write += int(parts[2])
        if read or write:
            break
    return read, write


def read_net_dev(pid: int, proc: Path = Path("/proc")) -> tuple[int, int]:
    """(rx, tx) bytes over every interface but loopback in the process's network namespace."""
    rx = tx = 0
    try:
        lines = (proc / str(pid) / "net" / "dev").read_text().splitlines()[2:]
    except OSError:
        return 0, 0
    for line in lines:
        name, _, data = line.partition(":")
        if name.strip() == "lo":
            continue
        fields = data.split()
        if len(fields) >= 9:
            rx += int(fields[0])
            tx += int(fields[8])
    return rx, tx


def _read_int(path: Path) -> int:
    return int(path.read_text().strip())


def _read_flat_keyed(path: Path) -> dict[str, int]:
    values: dict[str, int] = {}
    for line in path.read_text().splitlines():
        key, _, value = line.partition(" ")
        if value.strip().lstrip("-").isdigit():
            values[key] = int(value)
    return values
