"""A KernelRuntime for the agent core's tests: each "sandbox" is the real
in-kernel runner started as a host process.

The runtime is not under test here; what matters is that it keeps the
contract of bai.agent.runtime.base: labels, exit codes, wait, stop with grace,
logs, stats. The runner is pointed at the kernel's run and scratch directories
(the sources of the RUN_MOUNT and WORK_DIR binds) through the runner's own
environment overrides, so execution goes through the real runner protocol.
"""

from __future__ import annotations

import asyncio
import os
import signal
import sys
import uuid
from collections.abc import AsyncIterator
from contextlib import suppress
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime
from pathlib import Path

from bai.agent.runner.layout import ENV_RUN_DIR, ENV_WORK_DIR, RUN_MOUNT, RUNNER_SCRIPT, WORK_DIR
from bai.agent.runtime.base import (
    LABEL_KERNEL_ID,
    BindMount,
    CommitUnsupported,
    ImageInfo,
    ImageMissing,
    ImagePullFailed,
    LogLine,
    PullProgress,
    SandboxNotFound,
    SandboxSpec,
    SandboxState,
    SandboxStats,
)

IMAGE = "bai.local/stable/python:3.11"


@dataclass
class FakeSandbox:
    spec: SandboxSpec
    sandbox_id: str
    process: asyncio.subprocess.Process
    started_at: datetime
    logs: list[LogLine] = field(default_factory=list)
    pumps: list[asyncio.Task[None]] = field(default_factory=list)
    oom_killed: bool = False
    new_log: asyncio.Event = field(default_factory=asyncio.Event)


class HostProcessRuntime:
    name = "fake-host-process"

    def __init__(self, runner_dir: Path) -> None:
        self.runner_dir = runner_dir
        self.images: dict[str, ImageInfo] = {
            IMAGE: ImageInfo(
                ref=IMAGE,
                digest="sha256:" + "1" * 64,
                size_bytes=1000,
                labels={"ai.backend.kernelspec": "1", "ai.backend.service-ports": ""},
                architecture="x86_64",
                tags=[IMAGE],
                is_local=True,
            )
        }
        # Images a pull can fetch, and how long a pull stalls before its last step.
        self.registry: dict[str, ImageInfo] = {}
        self.pull_delay = 0.0
        self.sandboxes: dict[str, FakeSandbox] = {}
        self.started = 0
        self.available = True

    async def describe(self) -> str:
        return "fake host processes"

    async def list_images(self) -> list[ImageInfo]:
        return list(self.images.values())

    async def inspect_image(self, ref: str) -> ImageInfo | None:
        return self.images.get(ref)

    async def pull_image(
        self, ref: str, auth: dict[str, str] | None
    ) -> AsyncIterator[PullProgress]:
        info = self.registry.get(ref)
        if info is None:
            raise ImagePullFailed(f"{ref}: not in the registry")
        yield PullProgress(0, 10, "Downloading")
        await asyncio.sleep(self.pull_delay)
        yield PullProgress(10, 10, "Done")
        self.images[ref] = info

    async def remove_image(self, ref: str, force: bool) -> None:
        if self.images.pop(ref, None) is None:
            raise ImageMissing(ref)

    def _source(self, spec: SandboxSpec, target: str) -> Path:
        return next(m.source for m in spec.mounts if m.target == target)

    async def start(self, spec: SandboxSpec, sandbox_id: str | None = None) -> SandboxState:
        if spec.image not in self.images:
            raise ImageMissing(spec.image)
        environ = {
            **spec.environ,
            "PATH": os.environ.get("PATH", "/usr/bin:/bin"),
            ENV_RUN_DIR: str(self._source(spec, RUN_MOUNT)),
            ENV_WORK_DIR: str(self._source(spec, WORK_DIR)),
        }
        process = await asyncio.create_subprocess_exec(
            sys.executable,
            str(self.runner_dir / RUNNER_SCRIPT),
            env=environ,
            stdin=asyncio.subprocess.DEVNULL,
            stdout=asyncio.subprocess.PIPE,
            stderr=asyncio.subprocess.PIPE,
            start_new_session=True,
        )
        sandbox = FakeSandbox(
            spec, sandbox_id or uuid.uuid4().hex, process, started_at=datetime.now(UTC)
        )
        assert process.stdout is not None and process.stderr is not None
        sandbox.pumps = [
            asyncio.create_task(self._pump(sandbox, "stdout", process.stdout)),
            asyncio.create_task(self._pump(sandbox, "stderr", process.stderr)),
        ]
        self.sandboxes[sandbox.sandbox_id] = sandbox
        self.started += 1
        return self._state(sandbox)

    async def _pump(self, sandbox: FakeSandbox, stream: str, reader: asyncio.StreamReader) -> None:
        async for line in reader:
            sandbox.logs.append(LogLine(stream, datetime.now(UTC), line))  # type: ignore[arg-type]
            sandbox.new_log.set()

    def _state(self, sandbox: FakeSandbox) -> SandboxState:
        code = sandbox.process.returncode
        return SandboxState(
            sandbox_id=sandbox.sandbox_id,
            kernel_id=sandbox.spec.labels.get(LABEL_KERNEL_ID, ""),
            labels=dict(sandbox.spec.labels),
            running=code is None,
            exit_code=None if code is None else (128 - code if code < 0 else code),
            oom_killed=sandbox.oom_killed,
            started_at=sandbox.started_at,
        )

    def _get(self, sandbox_id: str) -> FakeSandbox:
        sandbox = self.sandboxes.get(sandbox_id)
        if sandbox is None:
            raise SandboxNotFound(sandbox_id)
        return sandbox

    async def stop(self, sandbox_id: str, grace_seconds: float) -> SandboxState:
        sandbox = self._get(sandbox_id)
        if sandbox.process.returncode is None:
            with suppress(ProcessLookupError):
                os.killpg(sandbox.process.pid, signal.SIGTERM if grace_seconds else signal.SIGKILL)
            try:
                await asyncio.wait_for(sandbox.process.wait(), grace_seconds or None)
            except TimeoutError:
                with suppress(ProcessLookupError):
                    os.killpg(sandbox.process.pid, signal.SIGKILL)
                await sandbox.process.wait()
        return self._state(sandbox)

    async def remove(self, sandbox_id: str) -> None:
        sandbox = self.sandboxes.pop(sandbox_id, None)
        if sandbox is not None and sandbox.process.returncode is None:
            with suppress(ProcessLookupError):
                os.killpg(sandbox.process.pid, signal.SIGKILL)
            await sandbox.process.wait()

    async def restart(self, sandbox_id: str, grace_seconds: float) -> SandboxState:
        sandbox = self._get(sandbox_id)
        await self.stop(sandbox_id, grace_seconds)
        return await self.start(sandbox.spec, sandbox_id)

    async def signal(self, sandbox_id: str, signum: int) -> None:
        os.kill(self._get(sandbox_id).process.pid, signum)

    async def inspect(self, sandbox_id: str) -> SandboxState:
        return self._state(self._get(sandbox_id))

    async def list_sandboxes(self, agent_id: str) -> list[SandboxState]:
        return [
            self._state(s)
            for s in self.sandboxes.values()
            if s.spec.labels.get("ai.bai.agent-id") == agent_id
        ]

    async def wait(self, sandbox_id: str) -> SandboxState:
        sandbox = self._get(sandbox_id)
        await sandbox.process.wait()
        for pump in sandbox.pumps:
            with suppress(asyncio.CancelledError):
                await pump
        return self._state(sandbox)

    async def logs(
        self, sandbox_id: str, *, tail: int | None, follow: bool, since: datetime | None
    ) -> AsyncIterator[LogLine]:
        sandbox = self._get(sandbox_id)
        start = 0 if tail is None else max(len(sandbox.logs) - tail, 0)
        position = start
        while True:
            while position < len(sandbox.logs):
                line = sandbox.logs[position]
                position += 1
                if since is None or line.time >= since:
                    yield line
            if not follow or sandbox.process.returncode is not None:
                return
            sandbox.new_log.clear()
            waiter = asyncio.create_task(sandbox.new_log.wait())
            exited = asyncio.create_task(sandbox.process.wait())
            await asyncio.wait({waiter, exited}, return_when=asyncio.FIRST_COMPLETED)
            waiter.cancel()
            exited.cancel()

    async def stats(self, sandbox_id: str) -> SandboxStats:
        sandbox = self._get(sandbox_id)
        try:
            fields = _proc_stat(sandbox.process.pid)
        except OSError as exc:
            raise SandboxNotFound(sandbox_id) from exc
        ticks = int(fields[11]) + int(fields[12])
        rss_pages = int(fields[21])
        return SandboxStats(
            cpu_used_ns=ticks * 1_000_000_000 // os.sysconf("SC_CLK_TCK"),
            mem_used_bytes=rss_pages * os.sysconf("SC_PAGE_SIZE"),
            mem_limit_bytes=sandbox.spec.mem_limit,
        )

    async def commit(self, sandbox_id: str, ref: str, labels: dict[str, str]) -> ImageInfo:
        raise CommitUnsupported("host processes have no image layer to commit")

    async def push_image(
        self, ref: str, auth: dict[str, str] | None
    ) -> AsyncIterator[PullProgress]:
        raise CommitUnsupported("host processes have no images to push")
        yield  # pragma: no cover - makes this a generator

    async def close(self) -> None:
        return None

    # Test controls: things a real runtime does on its own.
    async def oom_kill(self, sandbox_id: str) -> None:
        sandbox = self._get(sandbox_id)
        sandbox.oom_killed = True
        os.killpg(sandbox.process.pid, signal.SIGKILL)

    async def vanish(self, sandbox_id: str) -> None:
        """The container disappears behind the agent's back."""
        await self.remove(sandbox_id)

    async def stray(self, agent_id: str, directory: Path) -> str:
        """A sandbox with this agent's label but no kernel record."""
        base = next(iter(self.sandboxes.values())).spec
        mounts = [BindMount(directory, RUN_MOUNT), BindMount(directory, WORK_DIR)]
        labels = {**base.labels, LABEL_KERNEL_ID: str(uuid.uuid4())}
        return (await self.start(replace(base, labels=labels, mounts=mounts))).sandbox_id

    async def kill_all(self) -> None:
        for sandbox_id in list(self.sandboxes):
            await self.remove(sandbox_id)


def _proc_stat(pid: int) -> list[str]:
    return Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
