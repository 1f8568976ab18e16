"""Cgroup counter readers. v1 is read for real by the Docker runtime tests on this
machine; here both hierarchies are read from small trees in their kernel file
formats, since a v2 host is not available to every test run."""

from __future__ import annotations

from pathlib import Path

from bai.agent.runtime.cgroups import (
    CgroupCounters,
    CgroupPaths,
    docker_cgroup,
    is_unified,
    pid_cgroup,
    read_counters,
    read_net_dev,
)

CID = "abc123"


def write(path: Path, text: str) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text)


def test_v1_counters(tmp_path: Path) -> None:
    write(tmp_path / f"cpuacct/docker/{CID}/cpuacct.usage", "123456789\n")
    memory = tmp_path / f"memory/docker/{CID}"
    write(memory / "memory.usage_in_bytes", "10000000\n")
    write(memory / "memory.limit_in_bytes", "67108864\n")
    write(memory / "memory.stat", "cache 4000\nrss 9000\ntotal_inactive_file 1000000\n")
    write(
        tmp_path / f"blkio/docker/{CID}/blkio.throttle.io_service_bytes",
        "8:0 Read 4096\n8:0 Write 8192\n8:0 Sync 0\n8:16 Read 1\nTotal 12289\n",
    )
    assert not is_unified(tmp_path)
    paths = docker_cgroup(CID, None, tmp_path)
    assert paths == CgroupPaths.of(f"docker/{CID}", tmp_path) and not paths.unified
    assert read_counters(paths) == CgroupCounters(
        cpu_used_ns=123456789,
        mem_used_bytes=9000000,
        mem_limit_bytes=67108864,
        io_read_bytes=4097,
        io_write_bytes=8192,
    )


def test_v1_unlimited_memory_is_zero(tmp_path: Path) -> None:
    write(tmp_path / "cpuacct/bai/x/cpuacct.usage", "1\n")
    write(tmp_path / "memory/bai/x/memory.usage_in_bytes", "5\n")
    write(tmp_path / "memory/bai/x/memory.limit_in_bytes", "9223372036854771712\n")
    write(tmp_path / "memory/bai/x/memory.stat", "total_inactive_file 0\n")
    counters = read_counters(CgroupPaths.of("bai/x", tmp_path))
    assert (counters.mem_limit_bytes, counters.io_read_bytes) == (0, 0)


def test_v2_counters_systemd_scope(tmp_path: Path) -> None:
    write(tmp_path / "cgroup.controllers", "cpu io memory pids\n")
    scope = tmp_path / f"system.slice/docker-{CID}.scope"
    write(scope / "cpu.stat", "usage_usec 2500\nuser_usec 2000\nsystem_usec 500\n")
    write(scope / "memory.current", "3000000\n")
    write(scope / "memory.max", "max\n")
    write(scope / "memory.stat", "anon 2000000\ninactive_file 500000\n")
    write(
        scope / "io.stat",
        "8:0 rbytes=100 wbytes=200 rios=1 wios=2 dbytes=0 dios=0\n259:0 rbytes=5 wbytes=7\n",
    )
    assert is_unified(tmp_path)
    paths = docker_cgroup(CID, None, tmp_path)
    assert paths.unified and paths.cpu == scope
    assert read_counters(paths) == CgroupCounters(
        cpu_used_ns=2_500_000,
        mem_used_bytes=2_500_000,
        mem_limit_bytes=0,
        io_read_bytes=105,
        io_write_bytes=207,
    )


def test_pid_cgroup_v1_and_v2(tmp_path: Path) -> None:
    proc = tmp_path / "proc"
    write(proc / "42/cgroup", f"4:memory:/docker/{CID}\n2:cpuacct,cpu:/docker/{CID}\n0::/\n")
    v1_root = tmp_path / "v1"
    v1_root.mkdir()
    assert pid_cgroup(42, v1_root, proc) == f"/docker/{CID}"
    v2_root = tmp_path / "v2"
    write(v2_root / "cgroup.controllers", "cpu memory\n")
    write(proc / "43/cgroup", "0::/bai/sandbox-1\n")
    assert pid_cgroup(43, v2_root, proc) == "/bai/sandbox-1"
    assert pid_cgroup(44, v2_root, proc) is None


def test_net_dev_skips_loopback(tmp_path: Path) -> None:
    write(
        tmp_path / "7/net/dev",
        "Inter-|   Receive                                                |  Transmit\n"
        " face |bytes    packets errs drop fifo frame compressed multicast|bytes    packets\n"
        "    lo:  999999      10    0    0    0     0          0         0   999999      10"
        "    0    0    0     0       0          0\n"
        "  eth0:    1500      12    0    0    0     0          0         0      700       5"
        "    0    0    0     0       0          0\n",
    )
    assert read_net_dev(7, tmp_path) == (1500, 700)
    assert read_net_dev(8, tmp_path) == (0, 0)
