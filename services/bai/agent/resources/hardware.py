"""Host facts for HardwareInfo: hostname, OS, kernel, architecture, CPU and memory.

Read from /etc/os-release, /proc/cpuinfo and /proc/meminfo under a root that
tests can point elsewhere. Standard library only (the CUDA plugin's GPU check
runs without the rest of bai).
"""

from __future__ import annotations

import os
import platform
import socket
from dataclasses import dataclass
from pathlib import Path

ROOT = Path("/")

# platform.machine() spellings -> the names Backend.AI images are labelled with.
_ARCHITECTURES = {
    "x86_64": "x86_64",
    "amd64": "x86_64",
    "aarch64": "aarch64",
    "arm64": "aarch64",
}


@dataclass(frozen=True)
class HostFacts:
    hostname: str
    # PRETTY_NAME from os-release, e.g. "Debian GNU/Linux 12 (bookworm)".
    os: str
    kernel_version: str
    # "x86_64" or "aarch64" (other machines pass through unchanged).
    architecture: str
    cpu_model: str
    cpu_cores: int
    memory_bytes: int


def architecture_name(machine: str) -> str:
    return _ARCHITECTURES.get(machine.lower(), machine)


def read_os_name(root: Path = ROOT) -> str:
    for candidate in ("etc/os-release", "usr/lib/os-release"):
        path = root / candidate
        if path.is_file():
            fields = parse_os_release(path.read_text(encoding="utf-8", errors="replace"))
            return fields.get("PRETTY_NAME") or fields.get("NAME", "")
    return ""


def parse_os_release(text: str) -> dict[str, str]:
    fields: dict[str, str] = {}
    for line in text.splitlines():
        key, sep, value = line.strip().partition("=")
        if not sep or key.startswith("#"):
            continue
        fields[key] = value.strip().strip("\"'")
    return fields


def read_cpu_model(root: Path = ROOT) -> str:
    """The first "model name" in /proc/cpuinfo; ARM kernels lack it, so fall back to
    the "Hardware"/"Processor" lines, then to platform.processor()."""
    path = root / "proc/cpuinfo"
    fallback = ""
    if path.is_file():
        for line in path.read_text(encoding="utf-8", errors="replace").splitlines():
            key, sep, value = line.partition(":")
            if not sep:
                continue
            key = key.strip().lower()
            if key == "model name" and value.strip():
                return value.strip()
            if key in ("hardware", "processor") and value.strip() and not fallback:
                if not value.strip().isdigit():
                    fallback = value.strip()
    return fallback or platform.processor()


def read_mem_total(root: Path = ROOT) -> int:
    """MemTotal from /proc/meminfo in bytes (0 when unreadable)."""
    path = root / "proc/meminfo"
    if not path.is_file():
        return 0
    for line in path.read_text(encoding="utf-8").splitlines():
        if line.startswith("MemTotal:"):
            parts = line.split()
            amount = int(parts[1])
            unit = parts[2].lower() if len(parts) > 2 else "b"
            return amount * 1024 if unit == "kb" else amount
    return 0


def parse_cpu_list(text: str) -> list[int]:
    """A kernel-style cpu list ("0-3,6", as in cpuset.cpus) as sorted core ids;
    ValueError when malformed."""
    cores: set[int] = set()
    for part in text.replace(" ", "").split(","):
        low, sep, high = part.partition("-")
        if not low.isdigit() or (sep and not high.isdigit()):
            raise ValueError(f"not a cpu list: {text!r}")
        first, last = int(low), int(high) if sep else int(low)
        if last < first:
            raise ValueError(f"not a cpu list: {text!r}")
        cores.update(range(first, last + 1))
    return sorted(cores)


def usable_cores() -> list[int]:
    """The cores this process may run on (cgroup cpusets and taskset included)."""
    return sorted(os.sched_getaffinity(0))


def gather_host_facts(root: Path = ROOT) -> HostFacts:
    uname = os.uname()
    return HostFacts(
        hostname=socket.gethostname(),
        os=read_os_name(root),
        kernel_version=uname.release,
        architecture=architecture_name(uname.machine),
        cpu_model=read_cpu_model(root),
        cpu_cores=os.cpu_count() or len(usable_cores()),
        memory_bytes=read_mem_total(root),
    )
