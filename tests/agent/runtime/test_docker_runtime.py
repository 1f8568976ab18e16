"""DockerRuntime against the real dockerd and the locally built kernel image."""

from __future__ import annotations

import asyncio
import socket
import uuid
from collections.abc import AsyncIterator
from dataclasses import replace
from datetime import UTC, datetime, timedelta, timezone
from decimal import Decimal

import aiodocker
import pytest

from bai.agent.runtime.base import (
    LABEL_AGENT_ID,
    LABEL_KERNEL_ID,
    LABEL_SESSION_ID,
    ImageMissing,
    ImagePullFailed,
    LogLine,
    PortMapping,
    RuntimeUnavailable,
    SandboxNotFound,
    SandboxSpec,
    SandboxState,
)
from bai.agent.runtime.docker import DockerRuntime, unix_time_text

MiB = 1024 * 1024


@pytest.fixture
def spec(kernel_image: str, test_agent_id: str) -> SandboxSpec:
    return SandboxSpec(
        kernel_id=uuid.uuid4().hex,
        session_id=uuid.uuid4().hex,
        agent_id=test_agent_id,
        image=kernel_image,
        command=["sleep", "300"],
        environ={"GREETING": "hello"},
        cpu_limit=Decimal(0),
        mem_limit=0,
        labels={"ai.bai.test": "yes"},
        hostname="kernel-under-test",
    )


@pytest.fixture
async def started(docker_runtime: DockerRuntime) -> AsyncIterator[list[SandboxState]]:
    """Sandboxes a test starts; removed afterwards."""
    states: list[SandboxState] = []
    yield states
    for state in states:
        await docker_runtime.remove(state.sandbox_id)


async def start(runtime: DockerRuntime, started: list[SandboxState], spec: SandboxSpec) -> str:
    state = await runtime.start(spec)
    started.append(state)
    return state.sandbox_id


async def collect_logs(runtime: DockerRuntime, sandbox_id: str, **kwargs: object) -> list[LogLine]:
    return [line async for line in runtime.logs(sandbox_id, **kwargs)]  # type: ignore[arg-type]


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


async def test_describe(docker_runtime: DockerRuntime) -> None:
    assert (await docker_runtime.describe()).startswith("docker ")


async def test_unreachable_dockerd_is_runtime_unavailable() -> None:
    runtime = DockerRuntime("unix:///nonexistent/docker.sock")
    try:
        with pytest.raises(RuntimeUnavailable):
            await runtime.describe()
        with pytest.raises(RuntimeUnavailable):
            await runtime.inspect("anything")
    finally:
        await runtime.close()


async def test_start_inspect_stop_remove(
    docker_runtime: DockerRuntime, started: list[SandboxState], spec: SandboxSpec
) -> None:
    state = await docker_runtime.start(spec)
    started.append(state)
    assert state.running and state.exit_code is None and state.started_at is not None
    assert state.kernel_id == spec.kernel_id
    assert state.labels[LABEL_AGENT_ID] == spec.agent_id
    assert state.labels[LABEL_SESSION_ID] == spec.session_id
    assert state.labels[LABEL_KERNEL_ID] == spec.kernel_id
    assert state.labels["ai.bai.test"] == "yes"

    stopped = await docker_runtime.stop(state.sandbox_id, grace_seconds=5)
    # tini forwards SIGTERM to `sleep`, which dies of it: 128 + 15.
    assert not stopped.running and stopped.exit_code == 143 and not stopped.oom_killed
    assert stopped.started_at is not None and stopped.finished_at is not None
    assert stopped.finished_at >= stopped.started_at
    again = await docker_runtime.stop(state.sandbox_id, grace_seconds=0)
    assert again.exit_code == 143

    await docker_runtime.remove(state.sandbox_id)
    with pytest.raises(SandboxNotFound):
        await docker_runtime.inspect(state.sandbox_id)
    await docker_runtime.remove(state.sandbox_id)


async def test_kill_at_once_and_wait(
    docker_runtime: DockerRuntime, started: list[SandboxState], spec: SandboxSpec
) -> None:
    sandbox_id = await start(docker_runtime, started, spec)
    waiter = asyncio.create_task(docker_runtime.wait(sandbox_id))
    stopped = await docker_runtime.stop(sandbox_id, grace_seconds=0)
    assert stopped.exit_code == 137
    assert (await waiter).exit_code == 137


async def test_restart_runs_the_same_sandbox_again(
    docker_runtime: DockerRuntime, started: list[SandboxState], spec: SandboxSpec
) -> None:
    first = await docker_runtime.start(spec)
    started.append(first)
    again = await docker_runtime.restart(first.sandbox_id, grace_seconds=0)
    assert again.sandbox_id == first.sandbox_id and again.running
    assert first.started_at is not None and again.started_at is not None
    assert again.started_at > first.started_at


async def test_signal_reaches_the_main_process(
    docker_runtime: DockerRuntime, started: list[SandboxState], spec: SandboxSpec
) -> None:
    sandbox_id = await start(docker_runtime, started, spec)
    await docker_runtime.signal(sandbox_id, 15)
    assert (await docker_runtime.wait(sandbox_id)).exit_code == 143


async def test_env_hostname_and_workdir(
    docker_runtime: DockerRuntime, started: list[SandboxState], spec: SandboxSpec
) -> None:
    command = ["sh", "-c", 'echo "$GREETING $(hostname) $(pwd)"']
    sandbox_id = await start(docker_runtime, started, replace(spec, command=command))
    assert (await docker_runtime.wait(sandbox_id)).exit_code == 0
    lines = await collect_logs(docker_runtime, sandbox_id, tail=None, follow=False, since=None)
    assert [line.data for line in lines] == [b"hello kernel-under-test /home/work\n"]


async def test_list_sandboxes_by_agent_label(
    docker_runtime: DockerRuntime, started: list[SandboxState], spec: SandboxSpec
) -> None:
    other_agent = f"other-{uuid.uuid4().hex[:8]}"
    mine = {
        await start(docker_runtime, started, replace(spec, kernel_id=uuid.uuid4().hex))
        for _ in range(2)
    }
    theirs = await start(
        docker_runtime, started, replace(spec, kernel_id=uuid.uuid4().hex, agent_id=other_agent)
    )
    listed = {state.sandbox_id for state in await docker_runtime.list_sandboxes(spec.agent_id)}
    assert mine <= listed and theirs not in listed
    assert {s.sandbox_id for s in await docker_runtime.list_sandboxes(other_agent)} == {theirs}


async def test_port_publishing(
    docker_runtime: DockerRuntime, started: list[SandboxState], spec: SandboxSpec
) -> None:
    host_port = free_port()
    server = (
        "import socket\n"
        "s = socket.socket(); s.bind(('0.0.0.0', 8000)); s.listen()\n"
        "while True:\n"
        "    c, _ = s.accept(); c.sendall(b'hello from the kernel'); c.close()\n"
    )
    ports = [PortMapping(container_port=8000, host_port=host_port)]
    await start(
        docker_runtime, started, replace(spec, command=["python3", "-c", server], ports=ports)
    )
    reply = b""
    # The server needs a moment to listen; docker's proxy accepts and closes until then.
    for _ in range(100):
        try:
            reader, writer = await asyncio.open_connection("127.0.0.1", host_port)
            reply = await reader.read()
            writer.close()
        except OSError:
            reply = b""
        if reply:
            break
        await asyncio.sleep(0.05)
    assert reply == b"hello from the kernel"


async def test_logs_tail_and_follow(
    docker_runtime: DockerRuntime, started: list[SandboxState], spec: SandboxSpec
) -> None:
    script = "echo one; echo two >&2; echo three; sleep 0.5; echo four >&2"
    sandbox_id = await start(docker_runtime, started, replace(spec, command=["sh", "-c", script]))
    followed = await collect_logs(docker_runtime, sandbox_id, tail=None, follow=True, since=None)
    # Docker reads the two pipes separately: order holds within a stream, not across.
    by_stream = {
        name: [line.data for line in followed if line.stream == name]
        for name in ("stdout", "stderr")
    }
    assert by_stream == {"stdout": [b"one\n", b"three\n"], "stderr": [b"two\n", b"four\n"]}
    last = followed[-1]
    assert last.data == b"four\n" and all(line.time <= last.time for line in followed)
    tail = await collect_logs(docker_runtime, sandbox_id, tail=1, follow=False, since=None)
    assert [line.data for line in tail] == [b"four\n"]
    since = await collect_logs(docker_runtime, sandbox_id, tail=None, follow=False, since=last.time)
    assert [line.data for line in since] == [b"four\n"]


async def test_logs_of_unknown_sandbox(docker_runtime: DockerRuntime) -> None:
    with pytest.raises(SandboxNotFound):
        await collect_logs(docker_runtime, "no-such-container", tail=1, follow=False, since=None)


async def test_stats_counters_move_when_the_kernel_burns_cpu(
    docker_runtime: DockerRuntime, started: list[SandboxState], spec: SandboxSpec
) -> None:
    burn = ["python3", "-c", "while True: pass"]
    limited = replace(spec, command=burn, mem_limit=256 * MiB)
    sandbox_id = await start(docker_runtime, started, limited)
    first = await docker_runtime.stats(sandbox_id)
    assert first.mem_limit_bytes == 256 * MiB
    assert 0 < first.mem_used_bytes < 256 * MiB
    later = first
    for _ in range(200):
        await asyncio.sleep(0.02)
        later = await docker_runtime.stats(sandbox_id)
        if later.cpu_used_ns > first.cpu_used_ns:
            break
    assert later.cpu_used_ns > first.cpu_used_ns
    await docker_runtime.stop(sandbox_id, grace_seconds=0)
    with pytest.raises(SandboxNotFound):
        await docker_runtime.stats(sandbox_id)


async def test_stats_network_counters(
    docker_runtime: DockerRuntime, started: list[SandboxState], spec: SandboxSpec
) -> None:
    # Traffic to the bridge gateway (the host) counts as transmitted bytes on eth0.
    send = (
        "import socket, subprocess\n"
        "gw = [l.split()[2] for l in open('/proc/net/route') if l.split()[1] == '00000000']\n"
        "s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)\n"
        "ip = '.'.join(str(int(gw[0][i:i+2], 16)) for i in (6, 4, 2, 0))\n"
        "for _ in range(100): s.sendto(b'x' * 1000, (ip, 9))\n"
        "import time; time.sleep(300)\n"
    )
    sandbox_id = await start(
        docker_runtime, started, replace(spec, command=["python3", "-c", send])
    )
    stats = await docker_runtime.stats(sandbox_id)
    for _ in range(100):
        if stats.net_tx_bytes >= 100_000:
            break
        await asyncio.sleep(0.02)
        stats = await docker_runtime.stats(sandbox_id)
    assert stats.net_tx_bytes >= 100_000


async def test_memory_limit_is_an_oom_kill(
    docker_runtime: DockerRuntime, started: list[SandboxState], spec: SandboxSpec
) -> None:
    hog = ["python3", "-c", "blocks = [bytearray(8 * 1024 * 1024) for _ in range(64)]"]
    sandbox_id = await start(
        docker_runtime, started, replace(spec, command=hog, mem_limit=64 * MiB)
    )
    final = await docker_runtime.wait(sandbox_id)
    assert final.oom_killed
    assert final.exit_code == 137


async def test_cpu_limit_and_shm_are_applied(
    docker_runtime: DockerRuntime,
    started: list[SandboxState],
    spec: SandboxSpec,
    docker_socket: str,
) -> None:
    limited = replace(spec, cpu_limit=Decimal("0.5"), mem_limit=128 * MiB, shmem_bytes=32 * MiB)
    sandbox_id = await start(docker_runtime, started, limited)
    async with aiodocker.Docker(url=docker_socket) as client:
        info = (await client.containers.get(sandbox_id))._container
    host = info["HostConfig"]
    assert host["NanoCpus"] == 500_000_000
    assert host["Memory"] == host["MemorySwap"] == 128 * MiB
    assert host["ShmSize"] == 32 * MiB
    assert host["Init"] is True
    assert not host.get("CpusetCpus")


async def test_a_pinned_sandbox_gets_its_cpuset(
    docker_runtime: DockerRuntime,
    started: list[SandboxState],
    spec: SandboxSpec,
    docker_socket: str,
) -> None:
    sandbox_id = await start(docker_runtime, started, replace(spec, cpuset="0"))
    async with aiodocker.Docker(url=docker_socket) as client:
        info = (await client.containers.get(sandbox_id))._container
    assert info["HostConfig"]["CpusetCpus"] == "0"


async def test_missing_image(docker_runtime: DockerRuntime, spec: SandboxSpec) -> None:
    with pytest.raises(ImageMissing):
        await docker_runtime.start(replace(spec, image="bai.local/no-such-image:0"))
    assert await docker_runtime.inspect_image("bai.local/no-such-image:0") is None


async def test_pull_without_a_registry_fails(docker_runtime: DockerRuntime) -> None:
    with pytest.raises(ImagePullFailed):
        async for _progress in docker_runtime.pull_image("bai.invalid/nothing:0", None):
            pass


async def test_image_info(docker_runtime: DockerRuntime, kernel_image: str) -> None:
    info = await docker_runtime.inspect_image(kernel_image)
    assert info is not None
    assert info.digest.startswith("sha256:")
    assert info.architecture == "x86_64"
    assert info.size_bytes > 0
    assert info.labels["ai.backend.kernelspec"] == "1"
    assert info.labels["ai.backend.features"] == "query batch uid-match"
    assert kernel_image in info.tags
    listed = {image.digest: image for image in await docker_runtime.list_images()}
    assert listed[info.digest].labels == info.labels


async def test_untagged_images_are_not_listed(docker_runtime: DockerRuntime) -> None:
    """Leftovers of builds and commits have no name a session could ask for."""
    empty_tar = await asyncio.create_subprocess_exec(
        "sh",
        "-c",
        "tar -cf - -T /dev/null | docker import -",
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
    )
    out, err = await empty_tar.communicate()
    assert empty_tar.returncode == 0, err
    untagged = out.decode().strip()
    try:
        assert untagged.startswith("sha256:")
        listed = await docker_runtime.list_images()
        assert untagged not in {image.digest for image in listed}
        assert all(image.tags for image in listed)
    finally:
        await (await asyncio.create_subprocess_exec("docker", "rmi", "-f", untagged)).wait()


def test_since_is_sent_to_the_nanosecond() -> None:
    # Through a float this instant comes out 111 ns late ("...624941111"), which made
    # `since` skip a line Docker stamped between ...624941000 and ...624941111.
    moment = datetime(2026, 11, 27, 14, 2, 55, 624941, tzinfo=UTC)
    assert unix_time_text(moment) == "1795788175.624941000"
    assert unix_time_text(moment.astimezone(timezone(timedelta(hours=9)))) == (
        "1795788175.624941000"
    )
