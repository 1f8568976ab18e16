"""The process runtime's pure parts (cgroup layouts and files, the bwrap command line,
state records) and picking a runtime from config."""

from __future__ import annotations

import os
from datetime import UTC, datetime
from decimal import Decimal
from pathlib import Path

import pytest

from bai.agent.runtime.base import BindMount, PortMapping, RuntimeChoice, SandboxSpec
from bai.agent.runtime.process import ProcessRuntime
from bai.agent.runtime.process_bwrap import bwrap_arguments, sandbox_environ, spec_problem
from bai.agent.runtime.process_cgroup import (
    CgroupLayout,
    SandboxCgroup,
    cpu_quota_us,
    parse_cgroup_mounts,
    parse_flat_keyed,
)
from bai.agent.runtime.process_images import rootfs_name
from bai.agent.runtime.process_state import (
    decode_log_line,
    encode_log_line,
    spec_from_json,
    spec_to_json,
)
from bai.agent.runtime.select import select_runtime

V1_MOUNTS = """\
cgroup /sys/fs/cgroup/cpu,cpuacct cgroup rw,nosuid,nodev,noexec,relatime,cpu,cpuacct 0 0
cgroup /sys/fs/cgroup/memory cgroup rw,nosuid,nodev,noexec,relatime,memory 0 0
cgroup /sys/fs/cgroup/blkio cgroup rw,relatime,blkio 0 0
cgroup2 /sys/fs/cgroup/unified cgroup2 rw,nosuid,nodev,noexec,relatime 0 0
"""
V2_MOUNTS = "cgroup2 /sys/fs/cgroup cgroup2 rw,nosuid,nodev,noexec,relatime 0 0\n"


def spec(**fields: object) -> SandboxSpec:
    values: dict[str, object] = {
        "kernel_id": "0123456789abcdef",
        "session_id": "s",
        "agent_id": "a",
        "image": "img",
        "command": ["python3", "-m", "runner"],
        "environ": {"A": "1"},
        "cpu_limit": Decimal("1.5"),
        "mem_limit": 1 << 30,
        **fields,
    }
    return SandboxSpec(**values)  # type: ignore[arg-type]


def test_v1_layout_wins_over_an_empty_unified_tree() -> None:
    layout = parse_cgroup_mounts(V1_MOUNTS, v2_controllers="")

    assert layout == CgroupLayout(
        version=1,
        mounts={
            "cpu": Path("/sys/fs/cgroup/cpu,cpuacct"),
            "cpuacct": Path("/sys/fs/cgroup/cpu,cpuacct"),
            "memory": Path("/sys/fs/cgroup/memory"),
            "blkio": Path("/sys/fs/cgroup/blkio"),
        },
    )
    cgroup = SandboxCgroup.for_sandbox(layout, "bai", "sb1")
    assert cgroup.dirs() == [
        Path("/sys/fs/cgroup/blkio/bai/sb1"),
        Path("/sys/fs/cgroup/cpu,cpuacct/bai/sb1"),
        Path("/sys/fs/cgroup/memory/bai/sb1"),
    ]


def test_v2_layout_needs_the_memory_controller() -> None:
    assert parse_cgroup_mounts(V2_MOUNTS, v2_controllers="cpu io memory pids") == CgroupLayout(
        version=2, mounts={"": Path("/sys/fs/cgroup")}
    )
    assert parse_cgroup_mounts(V2_MOUNTS, v2_controllers="cpu io") is None
    assert parse_cgroup_mounts("", v2_controllers=None) is None


def test_cpu_quota_and_counter_files() -> None:
    assert cpu_quota_us(Decimal(0)) is None
    assert cpu_quota_us(Decimal("0.5")) == 50_000
    assert cpu_quota_us(Decimal("2")) == 200_000
    assert cpu_quota_us(Decimal("0.001")) == 1_000
    assert parse_flat_keyed("oom_kill_disable 0\nunder_oom 0\noom_kill 3\n")["oom_kill"] == 3


def test_bwrap_arguments_isolate_bind_and_limit(tmp_path: Path) -> None:
    mounts = [BindMount(Path("/data"), "/home/work"), BindMount(Path("/ro"), "/opt/x", True)]
    the_spec = spec(
        mounts=mounts,
        ports=[PortMapping(8080, 31000)],
        shmem_bytes=1 << 27,
        devices=["/dev/null"],
    )

    args = bwrap_arguments(the_spec, tmp_path, {"LANG": "C.UTF-8"}, ["/etc/resolv.conf"])
    joined = " ".join(args)

    for flag in ("--unshare-pid", "--unshare-ipc", "--unshare-uts"):
        assert flag in args
    assert "--unshare-net" not in args
    assert "--die-with-parent" not in args
    assert f"--bind {tmp_path} /" in joined
    assert "--bind /data /home/work" in joined
    assert "--ro-bind /ro /opt/x" in joined
    assert "--ro-bind /etc/resolv.conf /etc/resolv.conf" in joined
    assert "--dev-bind /dev/null /dev/null" in joined
    assert f"--size {1 << 27} --tmpfs /dev/shm" in joined
    assert "--hostname 0123456789ab" in joined
    # Mount points are made before the image's root turns read-only.
    assert args.index("--remount-ro") > args.index("/opt/x")
    assert args[-4:] == ["--", "python3", "-m", "runner"]
    assert "--setenv BAI_PORT_8080 31000" in joined
    assert sandbox_environ(the_spec, {"LANG": "C.UTF-8", "A": "image"})["A"] == "1"


def test_spec_problems_are_found_before_start(tmp_path: Path) -> None:
    assert spec_problem(spec()) is None
    assert spec_problem(spec(command=[])) == "the sandbox needs a command"
    missing = BindMount(tmp_path / "missing", "/x")
    assert "does not exist" in (spec_problem(spec(mounts=[missing])) or "")
    relative = BindMount(tmp_path, "x")
    assert "not absolute" in (spec_problem(spec(mounts=[relative])) or "")


def test_spec_and_log_records_round_trip() -> None:
    the_spec = spec(mounts=[BindMount(Path("/a"), "/b", True)], ports=[PortMapping(1, 2)])
    assert spec_from_json(spec_to_json(the_spec)) == the_spec

    time = datetime(2026, 1, 2, 3, 4, 5, 678901, tzinfo=UTC)
    for data in (b"text\n", b"\xff\xfe binary\n"):
        line = decode_log_line(encode_log_line("stderr", time, data))
        assert line is not None and (line.stream, line.time, line.data) == ("stderr", time, data)
    assert decode_log_line(b'{"t": "2026-01-0') is None


def test_image_refs_name_directories() -> None:
    assert rootfs_name("bai.local/stable/python:3.11") == "bai.local_stable_python_3.11"
    assert rootfs_name("host") == "host"


async def test_select_runtime_by_kind(tmp_path: Path) -> None:
    from bai.agent.runtime.docker import DockerRuntime

    process = await select_runtime(RuntimeChoice(kind="process", rootfs_dir=tmp_path), tmp_path)
    assert isinstance(process, ProcessRuntime)
    assert process.state_dir == tmp_path / "sandboxes"
    docker = await select_runtime(RuntimeChoice(kind="docker"), tmp_path)
    assert isinstance(docker, DockerRuntime)
    await docker.close()

    no_docker = RuntimeChoice(kind="auto", docker_socket=f"unix://{tmp_path}/no-docker.sock")
    assert isinstance(await select_runtime(no_docker, tmp_path), ProcessRuntime)


@pytest.mark.skipif(not os.path.exists("/var/run/docker.sock"), reason="dockerd is not running")
async def test_auto_prefers_a_docker_that_answers(tmp_path: Path) -> None:
    from bai.agent.runtime.docker import DockerRuntime

    runtime = await select_runtime(RuntimeChoice(kind="auto"), tmp_path)
    try:
        assert isinstance(runtime, DockerRuntime)
    finally:
        await runtime.close()


def test_mount_point_parents_are_opened_for_the_work_user(tmp_path: Path) -> None:
    from decimal import Decimal

    from bai.agent.runtime.base import BindMount, SandboxSpec
    from bai.agent.runtime.process_bwrap import open_mount_points

    rootfs = tmp_path / "rootfs"
    (rootfs / "opt").mkdir(parents=True)
    (rootfs / "opt" / "bai").mkdir(mode=0o700)
    spec = SandboxSpec(
        kernel_id="k",
        session_id="s",
        agent_id="a",
        image="i",
        command=["true"],
        environ={},
        cpu_limit=Decimal(0),
        mem_limit=0,
        mounts=[BindMount(tmp_path, "/opt/bai/runner"), BindMount(tmp_path, "/srv/data/x")],
    )
    open_mount_points(rootfs, spec)
    for directory in ("opt/bai", "srv", "srv/data"):
        assert (rootfs / directory).stat().st_mode & 0o777 == 0o755, directory
