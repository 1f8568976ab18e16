"""The process runtime against real bubblewrap and real cgroups.

The image is "host": an empty rootfs whose /usr is the host's (bound read-only by
each spec), with the usual /bin, /lib symlinks into it."""

from __future__ import annotations

import asyncio
import json
import os
import shutil
import signal
import sys
import uuid
from collections.abc import AsyncIterator, Iterator
from decimal import Decimal
from pathlib import Path
from typing import Any

import grpc
import pytest
import uvloop
from grpc_health.v1 import health, health_pb2, health_pb2_grpc

from bai.agent.runtime.base import (
    LABEL_AGENT_ID,
    BindMount,
    ImageMissing,
    ImagePullFailed,
    LogLine,
    PortMapping,
    RuntimeUnavailable,
    SandboxNotFound,
    SandboxSpec,
    SandboxStartFailed,
)
from bai.agent.runtime.process import ProcessRuntime
from bai.agent.runtime.process_cgroup import SandboxCgroup, detect_layout
from bai.agent.runtime.process_state import spec_to_json

LAYOUT = detect_layout() if os.path.exists("/proc/mounts") else None
pytestmark = [
    pytest.mark.skipif(os.geteuid() != 0, reason="the process runtime needs root"),
    pytest.mark.skipif(shutil.which("bwrap") is None, reason="bubblewrap (bwrap) is not installed"),
    pytest.mark.skipif(LAYOUT is None, reason="no cgroup memory controller is mounted"),
]

AGENT = "agent-under-test"
CGROUP_PARENT = f"bai-test-{os.getpid()}"
HOST_USR = BindMount(Path("/usr"), "/usr", read_only=True)


def make_rootfs(rootfs_dir: Path, name: str) -> None:
    rootfs = rootfs_dir / name
    (rootfs / "usr").mkdir(parents=True)
    for link in ("bin", "lib", "lib64", "sbin"):
        (rootfs / link).symlink_to(f"usr/{link}")
    (rootfs_dir / f"{name}.labels.json").write_text(json.dumps({"ai.backend.kernelspec": "1"}))


@pytest.fixture(scope="module")
def rootfs_dir(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Path]:
    path = tmp_path_factory.mktemp("rootfs")
    make_rootfs(path, "host")
    yield path
    assert LAYOUT is not None
    for mount in set(LAYOUT.mounts.values()):
        if (mount / CGROUP_PARENT).is_dir():
            (mount / CGROUP_PARENT).rmdir()


@pytest.fixture
async def runtime(rootfs_dir: Path, tmp_path: Path) -> AsyncIterator[ProcessRuntime]:
    runtime = ProcessRuntime(rootfs_dir, tmp_path / "state", cgroup_parent=CGROUP_PARENT)
    yield runtime
    for state in await runtime.list_sandboxes(AGENT):
        await runtime.remove(state.sandbox_id)


def host_spec(script: str, **fields: Any) -> SandboxSpec:
    extra_mounts: list[BindMount] = fields.pop("mounts", [])
    values: dict[str, Any] = {
        "kernel_id": uuid.uuid4().hex,
        "session_id": "session-1",
        "agent_id": AGENT,
        "image": "host",
        "command": ["/bin/sh", "-c", script],
        "environ": {},
        "cpu_limit": Decimal(0),
        "mem_limit": 0,
        "mounts": [HOST_USR, *extra_mounts],
        "work_dir": "/tmp",
        **fields,
    }
    return SandboxSpec(**values)


async def collect(lines: AsyncIterator[LogLine]) -> list[LogLine]:
    return [line async for line in lines]


async def output(runtime: ProcessRuntime, sandbox_id: str) -> str:
    lines = await collect(runtime.logs(sandbox_id, tail=None, follow=False, since=None))
    return b"".join(line.data for line in lines if line.stream == "stdout").decode()


async def wait_for_line(runtime: ProcessRuntime, sandbox_id: str, text: bytes) -> None:
    async for line in runtime.logs(sandbox_id, tail=None, follow=True, since=None):
        if line.data == text:
            return
    raise AssertionError(f"the sandbox exited before printing {text!r}")


def cgroup_of(sandbox_id: str) -> SandboxCgroup:
    assert LAYOUT is not None
    return SandboxCgroup.for_sandbox(LAYOUT, CGROUP_PARENT, sandbox_id)


async def test_wait_returns_the_exit_code_and_remove_forgets(runtime: ProcessRuntime) -> None:
    state = await runtime.start(host_spec("echo hello; exit 7"))
    assert state.labels[LABEL_AGENT_ID] == AGENT

    final = await runtime.wait(state.sandbox_id)

    assert (final.running, final.exit_code, final.oom_killed) == (False, 7, False)
    assert final.started_at is not None and final.finished_at is not None
    assert final.finished_at >= final.started_at
    assert await output(runtime, state.sandbox_id) == "hello\n"
    await runtime.remove(state.sandbox_id)
    with pytest.raises(SandboxNotFound):
        await runtime.inspect(state.sandbox_id)
    assert not cgroup_of(state.sandbox_id).exists()
    await runtime.remove(state.sandbox_id)


async def test_logs_tag_streams_and_honour_tail_and_since(runtime: ProcessRuntime) -> None:
    tagged = await runtime.start(host_spec("echo out; echo err >&2"))
    # Only stdout here: lines of two streams may be read in either order.
    counted = await runtime.start(host_spec("echo 1; echo 2; echo 3"))
    await runtime.wait(tagged.sandbox_id)
    await runtime.wait(counted.sandbox_id)

    streams = await collect(runtime.logs(tagged.sandbox_id, tail=None, follow=False, since=None))
    lines = await collect(runtime.logs(counted.sandbox_id, tail=None, follow=False, since=None))
    tail = await collect(runtime.logs(counted.sandbox_id, tail=2, follow=False, since=None))
    since = await collect(
        runtime.logs(counted.sandbox_id, tail=None, follow=False, since=lines[1].time)
    )

    assert {(line.stream, line.data) for line in streams} == {
        ("stdout", b"out\n"),
        ("stderr", b"err\n"),
    }
    assert [line.data for line in lines] == [b"1\n", b"2\n", b"3\n"]
    assert [line.data for line in tail] == [b"2\n", b"3\n"]
    assert since[-2:] == lines[1:]
    assert all(line.time >= lines[1].time for line in since)


async def test_follow_streams_until_the_sandbox_exits(
    runtime: ProcessRuntime, tmp_path: Path
) -> None:
    control = tmp_path / "control"
    control.mkdir()
    script = "echo first; while [ ! -e /control/go ]; do sleep 0.02; done; echo second; exit 4"
    spec = host_spec(script, mounts=[BindMount(control, "/control")])
    state = await runtime.start(spec)

    seen: list[bytes] = []
    async for line in runtime.logs(state.sandbox_id, tail=None, follow=True, since=None):
        seen.append(line.data)
        if line.data == b"first\n":
            (control / "go").touch()

    assert seen == [b"first\n", b"second\n"]
    assert (await runtime.inspect(state.sandbox_id)).exit_code == 4


async def test_environment_hostname_ports_and_work_dir(runtime: ProcessRuntime) -> None:
    spec = host_spec(
        'echo "$FOO"; cat /proc/sys/kernel/hostname; echo "$BAI_PORT_8080"; pwd; echo $$',
        environ={"FOO": "bar baz"},
        hostname="kernel-host",
        ports=[PortMapping(container_port=8080, host_port=30123)],
        work_dir="/home/work",
    )
    state = await runtime.start(spec)
    await runtime.wait(state.sandbox_id)

    # $$ = 2: the command runs in its own pid namespace, under bwrap's init.
    assert await output(runtime, state.sandbox_id) == "bar baz\nkernel-host\n30123\n/home/work\n2\n"


async def test_mounts_are_read_write_or_read_only_and_the_image_is_read_only(
    runtime: ProcessRuntime, tmp_path: Path
) -> None:
    rw, ro = tmp_path / "rw", tmp_path / "ro"
    rw.mkdir()
    ro.mkdir()
    script = (
        "echo written > /data/out; "
        "touch /ref/x 2>/dev/null && exit 10; touch /image-file 2>/dev/null && exit 11; exit 0"
    )
    mounts = [BindMount(rw, "/data"), BindMount(ro, "/ref", read_only=True)]
    state = await runtime.start(host_spec(script, mounts=mounts))

    assert (await runtime.wait(state.sandbox_id)).exit_code == 0
    assert (rw / "out").read_text() == "written\n"
    assert not (ro / "x").exists()


async def test_memory_limit_kills_and_reports_oom(runtime: ProcessRuntime) -> None:
    spec = host_spec(
        'exec python3 -c "data = b\\"x\\" * (512 << 20)"', mem_limit=64 << 20, cpu_limit=Decimal(1)
    )
    state = await runtime.start(spec)

    final = await runtime.wait(state.sandbox_id)

    assert (final.exit_code, final.oom_killed) == (128 + signal.SIGKILL, True)


async def test_limits_are_written_to_the_cgroup_and_counted(runtime: ProcessRuntime) -> None:
    script = "i=0; while [ $i -lt 20000 ]; do i=$((i+1)); done; echo burnt; exec sleep 1000"
    state = await runtime.start(host_spec(script, cpu_limit=Decimal("0.5"), mem_limit=128 << 20))
    await wait_for_line(runtime, state.sandbox_id, b"burnt\n")
    cgroup = cgroup_of(state.sandbox_id)

    cpu_dir, memory_dir = cgroup.dir("cpu"), cgroup.dir("memory")
    assert cpu_dir is not None and memory_dir is not None
    if cgroup.layout.version == 1:
        assert (cpu_dir / "cpu.cfs_quota_us").read_text().strip() == "50000"
        assert (cpu_dir / "cpu.cfs_period_us").read_text().strip() == "100000"
        assert (memory_dir / "memory.limit_in_bytes").read_text().strip() == str(128 << 20)
    else:
        assert (cpu_dir / "cpu.max").read_text().strip() == "50000 100000"
        assert (memory_dir / "memory.max").read_text().strip() == str(128 << 20)
    assert cgroup.pids(), "the sandbox's processes are in its cgroup"
    stats = await runtime.stats(state.sandbox_id)
    assert stats.cpu_used_ns > 0
    assert 0 < stats.mem_used_bytes <= 128 << 20
    assert stats.mem_limit_bytes == 128 << 20


async def test_a_pinned_sandbox_runs_on_its_cores_only(runtime: ProcessRuntime) -> None:
    script = "grep Cpus_allowed_list /proc/self/status; exec sleep 1000"
    state = await runtime.start(host_spec(script, cpuset="0"))
    await wait_for_line(runtime, state.sandbox_id, b"Cpus_allowed_list:\t0\n")


async def test_stop_with_grace_lets_the_command_exit(runtime: ProcessRuntime) -> None:
    script = 'trap "echo term; exit 5" TERM; echo ready; while :; do sleep 0.02; done'
    state = await runtime.start(host_spec(script))
    await wait_for_line(runtime, state.sandbox_id, b"ready\n")

    final = await runtime.stop(state.sandbox_id, grace_seconds=60)

    assert (final.running, final.exit_code) == (False, 5)
    assert "term\n" in await output(runtime, state.sandbox_id)
    assert await runtime.stop(state.sandbox_id, grace_seconds=60) == final


async def test_stop_kills_after_the_grace_period(runtime: ProcessRuntime) -> None:
    script = 'trap "" TERM; echo ready; while :; do sleep 0.02; done'
    state = await runtime.start(host_spec(script))
    await wait_for_line(runtime, state.sandbox_id, b"ready\n")

    final = await runtime.stop(state.sandbox_id, grace_seconds=0.2)

    assert (final.running, final.exit_code) == (False, 128 + signal.SIGKILL)
    assert cgroup_of(state.sandbox_id).pids() == []


async def test_signal_reaches_the_command(runtime: ProcessRuntime) -> None:
    script = 'trap "echo usr1; exit 3" USR1; echo ready; while :; do sleep 0.02; done'
    state = await runtime.start(host_spec(script))
    await wait_for_line(runtime, state.sandbox_id, b"ready\n")

    await runtime.signal(state.sandbox_id, signal.SIGUSR1)

    assert (await runtime.wait(state.sandbox_id)).exit_code == 3


async def test_restart_runs_the_same_spec_again(runtime: ProcessRuntime, tmp_path: Path) -> None:
    control = tmp_path / "control"
    control.mkdir()
    script = "echo run; while [ ! -e /control/go ]; do sleep 0.02; done; exit 6"
    state = await runtime.start(host_spec(script, mounts=[BindMount(control, "/control")]))
    await wait_for_line(runtime, state.sandbox_id, b"run\n")

    restarted = await runtime.restart(state.sandbox_id, grace_seconds=0)
    (control / "go").touch()
    final = await runtime.wait(state.sandbox_id)

    assert (restarted.sandbox_id, restarted.running) == (state.sandbox_id, True)
    assert final.exit_code == 6
    assert (await output(runtime, state.sandbox_id)).count("run\n") == 2


async def test_a_restarted_agent_adopts_running_sandboxes(rootfs_dir: Path, tmp_path: Path) -> None:
    state_dir = tmp_path / "state"
    spec = host_spec("echo alive; exec sleep 1000")
    # The "agent" that starts the sandbox is another process, and it exits.
    starter = (
        "import asyncio, json, sys; from pathlib import Path;"
        "from bai.agent.runtime.process import ProcessRuntime;"
        "from bai.agent.runtime.process_state import spec_from_json;"
        f"rt = ProcessRuntime(Path({str(rootfs_dir)!r}), Path({str(state_dir)!r}),"
        f" cgroup_parent={CGROUP_PARENT!r});"
        "print(asyncio.run(rt.start(spec_from_json(json.loads(sys.argv[1])))).sandbox_id)"
    )
    agent = await asyncio.create_subprocess_exec(
        sys.executable,
        "-c",
        starter,
        json.dumps(spec_to_json(spec)),
        stdout=asyncio.subprocess.PIPE,
    )
    out, _ = await agent.communicate()
    assert agent.returncode == 0
    sandbox_id = out.decode().strip()

    runtime = ProcessRuntime(rootfs_dir, state_dir, cgroup_parent=CGROUP_PARENT)
    try:
        found = await runtime.list_sandboxes(AGENT)
        assert [(s.sandbox_id, s.kernel_id, s.running) for s in found] == [
            (sandbox_id, spec.kernel_id, True)
        ]
        assert await runtime.list_sandboxes("another-agent") == []
        await wait_for_line(runtime, sandbox_id, b"alive\n")
        final = await runtime.stop(sandbox_id, grace_seconds=0)
        assert (final.running, final.exit_code) == (False, 128 + signal.SIGKILL)
    finally:
        await runtime.remove(sandbox_id)


async def test_start_failures_are_reported(runtime: ProcessRuntime, tmp_path: Path) -> None:
    with pytest.raises(ImageMissing):
        await runtime.start(host_spec("true", image="no-such-image"))
    with pytest.raises(SandboxStartFailed, match="does not exist"):
        await runtime.start(host_spec("true", mounts=[BindMount(tmp_path / "absent", "/x")]))
    with pytest.raises(SandboxStartFailed, match="execvp"):
        await runtime.start(host_spec("true", command=["/no/such/program"]))
    assert await runtime.list_sandboxes(AGENT) == []


async def test_describe_and_images(runtime: ProcessRuntime, tmp_path: Path) -> None:
    assert (await runtime.describe()).startswith("process (bubblewrap ")
    with pytest.raises(RuntimeUnavailable):
        await ProcessRuntime(tmp_path, tmp_path, bwrap="no-such-bwrap").describe()

    images = ProcessRuntime(tmp_path / "images", tmp_path / "state")
    make_rootfs(tmp_path / "images", "bai.local_stable_python_3.11")
    (tmp_path / "images" / "half-built").mkdir()
    listed = await images.list_images()
    assert [(i.ref, i.labels) for i in listed] == [
        ("bai.local_stable_python_3.11", {"ai.backend.kernelspec": "1"})
    ]
    found = await images.inspect_image("bai.local/stable/python:3.11")
    assert found is not None and found.ref == "bai.local_stable_python_3.11"
    assert await images.inspect_image("bai.local/stable/other:1") is None
    progress = [p async for p in images.pull_image("bai.local/stable/python:3.11", None)]
    assert len(progress) == 1
    with pytest.raises(ImagePullFailed):
        async for _ in images.pull_image("bai.local/stable/other:1", None):
            pass
    await images.remove_image("bai.local/stable/python:3.11", force=False)
    assert await images.list_images() == []
    with pytest.raises(ImageMissing):
        await images.remove_image("bai.local/stable/python:3.11", force=False)


async def start_while_grpc_is_busy(runtime: ProcessRuntime, lanes: int, per_lane: int) -> list[str]:
    """Start (then remove) sandboxes, `lanes` at a time, while gRPC calls run in this
    process as they do in the agent; the start failures."""
    server = grpc.aio.server()
    health_pb2_grpc.add_HealthServicer_to_server(health.aio.HealthServicer(), server)
    port = server.add_insecure_port("127.0.0.1:0")
    await server.start()
    calling = True
    failures: list[str] = []
    async with grpc.aio.insecure_channel(f"127.0.0.1:{port}") as channel:
        stub = health_pb2_grpc.HealthStub(channel)

        async def call() -> None:
            while calling:
                await stub.Check(health_pb2.HealthCheckRequest())

        async def lane() -> None:
            for _ in range(per_lane):
                try:
                    state = await runtime.start(host_spec("exec sleep 1000"))
                except SandboxStartFailed as e:
                    failures.append(str(e))
                    continue
                await runtime.remove(state.sandbox_id)

        callers = [asyncio.create_task(call()) for _ in range(4)]
        await asyncio.gather(*(lane() for _ in range(lanes)))
        calling = False
        await asyncio.gather(*callers)
    await server.stop(None)
    return failures


@pytest.mark.slow
async def test_starts_under_uvloop_while_grpc_is_busy(rootfs_dir: Path, tmp_path: Path) -> None:
    # The agent's conditions. uvloop spawns with fork(), which runs gRPC's at-fork
    # handlers in the child: the supervisor spawned that way was killed by SIGSEGV in
    # 5-30% of these starts ("the supervisor did not start").
    runtime = ProcessRuntime(rootfs_dir, tmp_path / "state", cgroup_parent=CGROUP_PARENT)
    failures = await asyncio.to_thread(uvloop.run, start_while_grpc_is_busy(runtime, 3, 10))
    assert failures == []
    assert await runtime.list_sandboxes(AGENT) == []
