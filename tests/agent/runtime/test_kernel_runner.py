"""The in-kernel runner, in real containers of the local kernel image, driven by the
agent's RunnerClient through the run directory's unix socket."""

from __future__ import annotations

import asyncio
import json
import os
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass, replace
from decimal import Decimal
from pathlib import Path

import pytest

from bai.agent.runner import protocol
from bai.agent.runner.client import (
    RunnerBusy,
    RunnerClient,
    RunnerUnavailable,
    RunOutput,
    RunResult,
    RunSpec,
    RunWaitingInput,
)
from bai.agent.runner.layout import (
    BATCH_RESULT_FILE,
    ENV_RUN_DIR,
    ENV_WORK_DIR,
    KERNEL_CONFIG_FILE,
    RUN_MOUNT,
    RUNNER_MOUNT,
    SOCKET_FILE,
    WORK_DIR,
    runner_command,
    runner_package_dir,
)
from bai.agent.runtime.base import BindMount, SandboxSpec
from bai.agent.runtime.docker import DockerRuntime
from tests.agent.runtime.runner_helpers import (
    run,
    runner_that_stops_reading,
    until_idle,
    write_after_the_result,
)

READY_TIMEOUT = 30.0
# kernel.json's user, as the agent writes it for the local image (uid-match).
WORK_USER = {"uid": 1000, "gid": 1000}
PYTHON39 = Path("/root/.pyenv/versions/3.9.18/bin/python3.9")


@dataclass
class Kernel:
    sandbox_id: str
    run_dir: Path
    client: RunnerClient


@pytest.fixture
def kernel_spec(kernel_image: str, test_agent_id: str) -> SandboxSpec:
    return SandboxSpec(
        kernel_id=uuid.uuid4().hex,
        session_id=uuid.uuid4().hex,
        agent_id=test_agent_id,
        image=kernel_image,
        command=runner_command(),
        environ={"BAI_TEST": "1"},
        cpu_limit=Decimal(1),
        mem_limit=512 * 1024 * 1024,
    )


StartKernel = Callable[..., Awaitable[Kernel]]


@pytest.fixture
async def start_kernel(
    docker_runtime: DockerRuntime, kernel_spec: SandboxSpec, short_tmp: Path
) -> AsyncIterator[StartKernel]:
    started: list[str] = []

    async def start(config: dict[str, object] | None = None, scratch: Path | None = None) -> Kernel:
        run_dir = short_tmp / f"run{len(started)}"
        run_dir.mkdir()
        if config is not None:
            (run_dir / KERNEL_CONFIG_FILE).write_text(json.dumps(config))
        mounts = [
            BindMount(runner_package_dir(), RUNNER_MOUNT, read_only=True),
            BindMount(run_dir, RUN_MOUNT),
        ]
        if scratch is not None:
            mounts.append(BindMount(scratch, WORK_DIR))
        spec = replace(kernel_spec, kernel_id=uuid.uuid4().hex, mounts=mounts)
        state = await docker_runtime.start(spec)
        started.append(state.sandbox_id)
        return Kernel(state.sandbox_id, run_dir, RunnerClient(run_dir / SOCKET_FILE))

    yield start
    for sandbox_id in started:
        await docker_runtime.remove(sandbox_id)


@pytest.fixture
async def kernel(start_kernel: StartKernel) -> Kernel:
    started = await start_kernel(WORK_USER)
    await started.client.wait_ready(READY_TIMEOUT)
    return started


async def test_query_keeps_state_and_prints_the_last_expression(kernel: Kernel) -> None:
    first = await run(kernel.client, RunSpec("query", "x = 40\ny = 'not printed'"))
    assert first.result == RunResult("finished", 0, [], "")
    assert first.outputs == []
    second = await run(kernel.client, RunSpec("query", "x + 2"))
    assert second.text("stdout") == "42\n"
    assert second.result is not None and second.result.exit_code == 0


async def test_query_output_is_ordered_across_streams(kernel: Kernel) -> None:
    code = (
        "import sys\n"
        "for i in range(20):\n"
        "    sys.stdout.write(f'out{i} ')\n"
        "    sys.stderr.write(f'err{i} ')\n"
    )
    transcript = await run(kernel.client, RunSpec("query", code))
    assert [output.seq for output in transcript.outputs] == list(range(40))
    expected = "".join(f"out{i} err{i} " for i in range(20))
    assert transcript.all_text() == expected
    assert all(
        o.stream == ("stdout" if i % 2 == 0 else "stderr") for i, o in enumerate(transcript.outputs)
    )


async def test_large_output_and_stdin_are_split_into_frames(kernel: Kernel) -> None:
    big = await run(kernel.client, RunSpec("query", "print('x' * (3 * 1024 * 1024))"))
    assert big.text("stdout") == "x" * (3 * 1024 * 1024) + "\n"
    assert len(big.outputs) >= 4
    # A two-byte character straddles the first frame boundary.
    line = b"y" * (1024 * 1024 - 1) + "é".encode() + b"z" * 1_000_000 + b"\n"
    echoed = await run(kernel.client, RunSpec("query", "len(input())"), [line])
    assert echoed.text("stdout") == f"{1024 * 1024 + 1_000_000}\n"


async def test_query_input_round_trip(kernel: Kernel) -> None:
    code = (
        "import getpass\n"
        "name = input('name? ')\n"
        "secret = getpass.getpass('secret? ')\n"
        "print('hello', name, len(secret))\n"
    )
    transcript = await run(kernel.client, RunSpec("query", code), [b"world\n", b"hunter2\n"])
    assert transcript.prompts == [
        RunWaitingInput("name? ", False),
        RunWaitingInput("secret? ", True),
    ]
    assert transcript.text("stdout") == "hello world 7\n"


async def test_query_stdin_at_eof_raises_eoferror(kernel: Kernel) -> None:
    code = "try:\n    input()\nexcept EOFError:\n    print('eof')\n"
    transcript = await run(kernel.client, RunSpec("query", code), [b""])
    assert transcript.text("stdout") == "eof\n"


async def test_query_exception_prints_a_traceback(kernel: Kernel) -> None:
    transcript = await run(kernel.client, RunSpec("query", "def f():\n    1 / 0\nf()"))
    assert transcript.result is not None
    assert (transcript.result.status, transcript.result.exit_code) == ("finished", 1)
    stderr = transcript.text("stderr")
    assert stderr.startswith("Traceback (most recent call last):")
    assert "ZeroDivisionError: division by zero" in stderr and "in f" in stderr
    assert "query_exec" not in stderr
    syntax = await run(kernel.client, RunSpec("query", "def ("))
    assert syntax.result is not None and syntax.result.exit_code == 1
    assert "SyntaxError" in syntax.text("stderr")


async def test_query_interrupt_stops_a_busy_loop(kernel: Kernel) -> None:
    handle = await kernel.client.start_run(RunSpec("query", "print('go')\nwhile True: pass"))
    async with handle:
        events = handle.events()
        first = await anext(events)
        assert isinstance(first, RunOutput) and first.data == b"go"
        await handle.interrupt()
        rest = [event async for event in events]
    result = rest[-1]
    assert isinstance(result, RunResult)
    assert (result.status, result.exit_code) == ("interrupted", None)
    after = await run(kernel.client, RunSpec("query", "'still alive'"))
    assert after.text("stdout") == "'still alive'\n"


async def test_query_timeout(kernel: Kernel) -> None:
    transcript = await run(kernel.client, RunSpec("query", "while True: pass", timeout=0.5))
    assert transcript.result is not None and transcript.result.status == "timed_out"
    assert "KeyboardInterrupt" in transcript.text("stderr")


async def test_second_run_is_refused_while_one_is_going(kernel: Kernel) -> None:
    handle = await kernel.client.start_run(RunSpec("query", "import time; time.sleep(60)"))
    with pytest.raises(RunnerBusy):
        await kernel.client.start_run(RunSpec("query", "1"))
    # Closing before the result interrupts the run and frees the kernel.
    await handle.close()
    assert handle.result is not None and handle.result.status == "interrupted"
    after = await run(kernel.client, RunSpec("batch", "echo free"))
    assert after.text("stdout") == "free\n"


async def test_batch_mode_exit_code_env_and_stdin(kernel: Kernel) -> None:
    code = "read line; echo got $line; echo $FOO >&2; pwd; exit 3"
    handle = await kernel.client.start_run(RunSpec("batch", code, environ={"FOO": "bar"}))
    async with handle:
        await handle.send_stdin(b"hi\n", eof=True)
        events = [event async for event in handle.events()]
    outputs = [event for event in events if isinstance(event, RunOutput)]
    stdout = b"".join(o.data for o in outputs if o.stream == "stdout")
    stderr = b"".join(o.data for o in outputs if o.stream == "stderr")
    assert (stdout, stderr) == (b"got hi\n/home/work\n", b"bar\n")
    assert events[-1] == RunResult("finished", 3, [], "")


async def test_a_run_over_before_the_end_of_stdin_keeps_its_result(kernel: Kernel) -> None:
    handle = await kernel.client.start_run(RunSpec("batch", "echo done"))
    async with handle:
        # The result is sent before the client writes the end of stdin (as the agent's
        # Execute relay does when its caller has nothing to send).
        await until_idle(kernel.client)
        await handle.send_stdin(b"", eof=True)
        events = [event async for event in handle.events()]
    assert events == [RunOutput("stdout", b"done\n", 0), RunResult("finished", 0, [], "")]


async def test_the_runner_reads_until_the_client_closes(kernel: Kernel) -> None:
    socket_path = kernel.run_dir / SOCKET_FILE
    frames, rest = await asyncio.to_thread(write_after_the_result, socket_path)
    assert [frame["op"] for frame in frames] == ["accepted", "output", "result"]
    assert rest == b""


async def test_the_client_keeps_the_result_when_a_late_write_fails(short_tmp: Path) -> None:
    output = {"op": protocol.OP_OUTPUT, "stream": "stdout", "seq": 0, "data": "ZG9uZQo="}
    result = {"op": protocol.OP_RESULT, "status": "finished", "exit_code": 0, "files": []}
    socket_path = short_tmp / SOCKET_FILE
    with runner_that_stops_reading(socket_path, [output, result]) as replied:
        handle = await RunnerClient(socket_path).start_run(RunSpec("batch", "echo done"))
        async with handle:
            await asyncio.to_thread(replied.wait)
            await handle.send_stdin(b"", eof=True)
            events = [event async for event in handle.events()]
    assert events == [RunOutput("stdout", b"done\n", 0), RunResult("finished", 0, [], "")]


async def test_batch_build_command_failure(kernel: Kernel) -> None:
    transcript = await run(kernel.client, RunSpec("batch", "echo never", build_command="exit 4"))
    assert transcript.result == RunResult("failed", 4, [], "build command failed")
    built = await run(kernel.client, RunSpec("batch", "echo run", build_command="echo build"))
    assert built.text("stdout") == "build\nrun\n"


async def test_batch_interrupt_and_timeout(kernel: Kernel) -> None:
    handle = await kernel.client.start_run(RunSpec("batch", "echo started; sleep 60"))
    async with handle:
        events = handle.events()
        assert isinstance(await anext(events), RunOutput)
        await handle.interrupt()
        result = [event async for event in events][-1]
    assert result == RunResult("interrupted", 130, [], "")
    timed = await run(kernel.client, RunSpec("batch", "sleep 60", timeout=0.5))
    assert timed.result is not None and timed.result.status == "timed_out"


async def test_runs_report_the_files_they_leave_in_output(kernel: Kernel) -> None:
    code = "mkdir -p .output/sub && echo 1 > .output/a.txt && echo 2 > .output/sub/b.txt"
    first = await run(kernel.client, RunSpec("batch", code))
    assert first.result is not None and first.result.files == ["a.txt", "sub/b.txt"]
    code = "open('/home/work/.output/a.txt', 'w').write('changed and longer')"
    second = await run(kernel.client, RunSpec("query", code))
    assert second.result is not None and second.result.files == ["a.txt"]


async def test_batch_session_exits_with_the_command_code(
    start_kernel: StartKernel, docker_runtime: DockerRuntime
) -> None:
    config = {
        "session_type": "batch",
        "bootstrap_script": "echo booted > /home/work/boot.txt",
        "startup_command": "cat /home/work/boot.txt; echo $BAI_TEST; echo oops >&2; exit 7",
        "batch_timeout_seconds": 0,
    }
    kernel = await start_kernel(config)
    final = await docker_runtime.wait(kernel.sandbox_id)
    assert final.exit_code == 7
    result = json.loads((kernel.run_dir / BATCH_RESULT_FILE).read_text())
    assert (result["exit_code"], result["reason"]) == (7, "failed")
    logs = [
        line
        async for line in docker_runtime.logs(
            kernel.sandbox_id, tail=None, follow=False, since=None
        )
    ]
    assert [(line.stream, line.data) for line in logs if line.stream == "stdout"] == [
        ("stdout", b"booted\n"),
        ("stdout", b"1\n"),
    ]
    assert [line.data for line in logs if line.stream == "stderr"] == [b"oops\n"]


async def test_batch_session_success_and_timeout(
    start_kernel: StartKernel, docker_runtime: DockerRuntime
) -> None:
    fine = await start_kernel({"session_type": "batch", "startup_command": "true"})
    slow = await start_kernel(
        {
            **WORK_USER,
            "session_type": "batch",
            "startup_command": "sleep 60",
            "batch_timeout_seconds": 0.5,
        }
    )
    assert (await docker_runtime.wait(fine.sandbox_id)).exit_code == 0
    finished = json.loads((fine.run_dir / BATCH_RESULT_FILE).read_text())
    assert (finished["exit_code"], finished["reason"]) == (0, "finished")
    assert (await docker_runtime.wait(slow.sandbox_id)).exit_code == 143
    timed_out = json.loads((slow.run_dir / BATCH_RESULT_FILE).read_text())
    assert (timed_out["exit_code"], timed_out["reason"]) == (143, "timeout")


async def test_interactive_startup_command_runs_in_the_background(
    start_kernel: StartKernel,
) -> None:
    kernel = await start_kernel(
        {"session_type": "interactive", "startup_command": "echo up > /tmp/started; sleep 60"}
    )
    await kernel.client.wait_ready(READY_TIMEOUT)
    code = (
        "import os, time\n"
        "while not os.path.exists('/tmp/started'): time.sleep(0.01)\n"
        "open('/tmp/started').read()"
    )
    transcript = await run(kernel.client, RunSpec("query", code, timeout=20))
    assert transcript.text("stdout") == "'up\\n'\n"


async def test_user_code_runs_as_the_kernel_user(
    start_kernel: StartKernel, short_tmp: Path
) -> None:
    scratch = short_tmp / "scratch"
    scratch.mkdir()
    os.chown(scratch, 1000, 1000)
    config = {
        **WORK_USER,
        "supplementary_gids": [1001],
        "bootstrap_script": "echo booted > /tmp/bootstrapped",
        "startup_command": "echo up > /tmp/started; sleep 60",
    }
    kernel = await start_kernel(config, scratch)
    await kernel.client.wait_ready(READY_TIMEOUT)
    code = (
        "import os, time\n"
        "while not os.path.exists('/tmp/started'): time.sleep(0.01)\n"
        "open('/home/work/query.txt', 'w').write('q')\n"
        "print(os.getuid(), os.getgid(), os.getgroups(), os.environ['HOME'])\n"
        "print(os.stat('/tmp/bootstrapped').st_uid, os.stat('/tmp/started').st_uid)\n"
        "try:\n    os.setuid(0)\nexcept PermissionError:\n    print('no way back')\n"
    )
    query = await run(kernel.client, RunSpec("query", code, timeout=20))
    assert query.text("stdout") == "1000 1000 [1001] /home/work\n0 1000\nno way back\n"
    batch = await run(kernel.client, RunSpec("batch", "echo b > /home/work/batch.txt"))
    assert batch.result is not None and batch.result.exit_code == 0
    owners = {path.name: (path.stat().st_uid, path.stat().st_gid) for path in scratch.iterdir()}
    assert owners == {"query.txt": (1000, 1000), "batch.txt": (1000, 1000)}


async def test_wait_ready_gives_up(short_tmp: Path) -> None:
    client = RunnerClient(short_tmp / "missing.sock")
    with pytest.raises(RunnerUnavailable, match="not ready"):
        await client.wait_ready(0.2)
    with pytest.raises(RunnerUnavailable):
        await client.start_run(RunSpec("query", "1"))


@pytest.mark.skipif(not PYTHON39.exists(), reason=f"no python 3.9 at {PYTHON39}")
async def test_runner_script_on_python39_on_the_host(short_tmp: Path) -> None:
    """The oldest python the runner supports, started the way the process runtime would."""
    (short_tmp / "work").mkdir()
    environ = {**os.environ, ENV_RUN_DIR: str(short_tmp), ENV_WORK_DIR: str(short_tmp / "work")}
    script = runner_package_dir() / "kernel_runner.py"
    process = await asyncio.create_subprocess_exec(str(PYTHON39), str(script), env=environ)
    try:
        client = RunnerClient(short_tmp / SOCKET_FILE)
        await client.wait_ready(READY_TIMEOUT)
        query = await run(client, RunSpec("query", "import sys\nsys.version_info[:2]"))
        assert query.text("stdout") == "(3, 9)\n"
        batch = await run(client, RunSpec("batch", "pwd"))
        assert batch.text("stdout") == f"{short_tmp / 'work'}\n"
    finally:
        process.kill()
        await process.wait()
