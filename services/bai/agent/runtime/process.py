"""The process runtime: kernels as bubblewrap sandboxes in their own cgroups, for
hosts without Docker.

Each sandbox has a state directory (`process_state`) and a detached supervisor
(`process_supervisor`) that outlives the agent: a new ProcessRuntime on the same
state directory finds every sandbox again, running or exited. Images are rootfs
directories (`process_images`); the bwrap command line is in `process_bwrap`, the
cgroup limits in `process_cgroup`; usage counters come from `cgroups`.

Differences from the Docker runtime, by design:
- Networking is the host's. Ports cannot be remapped, so each PortMapping becomes
  the environment variable BAI_PORT_<container_port>=<host_port> and the kernel
  listens on the host port it names.
- stats() reports network counters as 0: with the host's network, /proc/<pid>/net
  counts the whole node, not the kernel. mem_limit_bytes is 0 when unlimited.
- There is no registry: pull_image succeeds only for an image already built here.
- commit and push_image raise CommitUnsupported (COMMIT_UNSUPPORTED says why).
- GPUs are exposed by their device nodes (spec.devices); gpu_device_ids is unused.
- A sandbox whose supervisor vanished without recording an exit reports
  exit code -1 (LOST_EXIT_CODE).
"""

from __future__ import annotations

import asyncio
import dataclasses
import os
import shutil
import signal
import subprocess
import uuid
from collections.abc import AsyncIterator
from datetime import datetime
from pathlib import Path

from bai.agent.resources.hardware import parse_cpu_list
from bai.agent.runtime.base import (
    LABEL_AGENT_ID,
    LABEL_KERNEL_ID,
    LABEL_SESSION_ID,
    CommitUnsupported,
    ImageInfo,
    ImageMissing,
    ImagePullFailed,
    LogLine,
    PullProgress,
    RuntimeFailure,
    RuntimeUnavailable,
    SandboxNotFound,
    SandboxSpec,
    SandboxStartFailed,
    SandboxState,
    SandboxStats,
)
from bai.agent.runtime.cgroups import CgroupPaths, read_counters
from bai.agent.runtime.process_bwrap import (
    bwrap_arguments,
    host_network_files,
    open_mount_points,
    spec_problem,
)
from bai.agent.runtime.process_cgroup import (
    CgroupError,
    CgroupLayout,
    SandboxCgroup,
    detect_layout,
)
from bai.agent.runtime.process_images import RootfsImageStore
from bai.agent.runtime.process_logs import LogReader
from bai.agent.runtime.process_state import (
    SandboxDir,
    record_time,
    spec_from_json,
    spec_to_json,
)
from bai.agent.runtime.process_supervisor import exit_description, spawn_supervisor

LOST_EXIT_CODE = -1
# How long the supervisor may take to record the exit of a killed sandbox.
KILL_SETTLE_SECONDS = 10.0
COMMIT_UNSUPPORTED = (
    "the process runtime cannot commit: a sandbox's rootfs is the image's, read-only and"
    " shared; it writes only to its mounts and tmpfs, so there is nothing to commit"
)


class ProcessRuntime:
    """KernelRuntime on bubblewrap. `state_dir` holds one directory per sandbox;
    `cgroup_parent` names the cgroup that holds the sandboxes' cgroups."""

    name = "process"

    def __init__(
        self,
        rootfs_dir: Path,
        state_dir: Path,
        *,
        cgroup_parent: str = "bai",
        bwrap: str = "bwrap",
        poll_interval: float = 0.05,
    ) -> None:
        self.images = RootfsImageStore(rootfs_dir)
        self.state_dir = state_dir.absolute()
        self.cgroup_parent = cgroup_parent
        self.bwrap = bwrap
        self.poll_interval = poll_interval
        self._layout: CgroupLayout | None = None
        self._locks: dict[str, asyncio.Lock] = {}

    # -- runtime and images -------------------------------------------------

    async def describe(self) -> str:
        path = shutil.which(self.bwrap)
        if path is None:
            raise RuntimeUnavailable(f"bubblewrap ({self.bwrap}) is not installed")
        # Not the event loop's subprocess support: see spawn_supervisor.
        done = await asyncio.to_thread(
            subprocess.run, [path, "--version"], capture_output=True, check=False
        )
        if done.returncode != 0:
            problem = f"{exit_description(done.returncode)}: {done.stderr.decode().strip()}"
            raise RuntimeUnavailable(f"{path} --version failed: {problem}")
        if self._cgroup_layout() is None:
            raise RuntimeUnavailable("no cgroup memory controller is mounted")
        return f"process ({done.stdout.decode().strip()})"

    async def list_images(self) -> list[ImageInfo]:
        def read() -> list[ImageInfo]:
            return [self.images.info(image) for image in self.images.all()]

        return await asyncio.to_thread(read)

    async def inspect_image(self, ref: str) -> ImageInfo | None:
        def read() -> ImageInfo | None:
            image = self.images.find(ref)
            return None if image is None else self.images.info(image)

        return await asyncio.to_thread(read)

    async def pull_image(
        self, ref: str, auth: dict[str, str] | None
    ) -> AsyncIterator[PullProgress]:
        if await asyncio.to_thread(self.images.find, ref) is None:
            raise ImagePullFailed("the process runtime has no registry; build the image locally")
        yield PullProgress(current_bytes=0, total_bytes=0, message=f"{ref} is present locally")

    async def remove_image(self, ref: str, force: bool) -> None:
        image = await asyncio.to_thread(self.images.find, ref)
        if image is None:
            raise ImageMissing(f"image {ref} is not present")
        if not force:
            for state, spec in self._all_sandboxes():
                found = self.images.find(spec.image)
                if state.running and found is not None and found.name == image.name:
                    raise RuntimeFailure(f"image {ref} is in use by sandbox {state.sandbox_id}")
        await asyncio.to_thread(self.images.remove, image)

    async def commit(self, sandbox_id: str, ref: str, labels: dict[str, str]) -> ImageInfo:
        raise CommitUnsupported(COMMIT_UNSUPPORTED)

    async def push_image(
        self, ref: str, auth: dict[str, str] | None
    ) -> AsyncIterator[PullProgress]:
        raise CommitUnsupported(COMMIT_UNSUPPORTED)
        yield  # pragma: no cover - makes this a generator

    # -- sandboxes ---------------------------------------------------------------

    async def start(self, spec: SandboxSpec) -> SandboxState:
        image = await asyncio.to_thread(self.images.find, spec.image)
        if image is None:
            raise ImageMissing(f"image {spec.image} is not present in {self.images.rootfs_dir}")
        bwrap = shutil.which(self.bwrap)
        if bwrap is None:
            raise RuntimeUnavailable(f"bubblewrap ({self.bwrap}) is not installed")
        problem = spec_problem(spec)
        if problem is not None:
            raise SandboxStartFailed(problem)
        cgroup_layout = self._cgroup_layout()
        if cgroup_layout is None:
            raise SandboxStartFailed("no cgroup memory controller is mounted")
        sandbox = SandboxDir(self.state_dir / uuid.uuid4().hex)
        cgroup = SandboxCgroup.for_sandbox(cgroup_layout, self.cgroup_parent, sandbox.sandbox_id)
        labels = {
            **spec.labels,
            LABEL_AGENT_ID: spec.agent_id,
            LABEL_KERNEL_ID: spec.kernel_id,
            LABEL_SESSION_ID: spec.session_id,
        }
        spec = dataclasses.replace(spec, labels=labels)
        args = bwrap_arguments(spec, image.rootfs, image.env, host_network_files(image.rootfs))
        await asyncio.to_thread(open_mount_points, image.rootfs, spec)
        sandbox.path.mkdir(parents=True)
        sandbox.write_json(sandbox.spec_file, spec_to_json(spec))
        sandbox.write_json(
            sandbox.launch_file,
            {
                "bwrap": bwrap,
                "args": args,
                "cgroup_procs": cgroup.procs_files(),
                "cpus": parse_cpu_list(spec.cpuset) if spec.cpuset else [],
            },
        )
        async with self._lock(sandbox.sandbox_id):
            try:
                await self._launch(sandbox, spec, cgroup)
            except BaseException:
                await asyncio.to_thread(self._discard, sandbox, cgroup)
                raise
            return self._state(sandbox)

    async def _launch(self, sandbox: SandboxDir, spec: SandboxSpec, cgroup: SandboxCgroup) -> None:
        try:
            await asyncio.to_thread(cgroup.create, spec.cpu_limit, spec.mem_limit)
        except CgroupError as e:
            raise SandboxStartFailed(str(e)) from e
        problem = await spawn_supervisor(sandbox)
        if problem is not None:
            raise SandboxStartFailed(f"the supervisor did not start: {problem}")
        # Started means the command runs: bwrap fails without an exit code when a mount
        # or the exec of the command fails, and start() must report that.
        while not sandbox.exit_file.exists():
            if sandbox.command_execed(self._main_pid(sandbox)):
                break
            # Checked again: the supervisor may have recorded the exit just before leaving.
            if not sandbox.supervisor_alive() and not sandbox.exit_file.exists():
                raise SandboxStartFailed(f"the supervisor failed: {sandbox.supervisor_log_tail()}")
            await asyncio.sleep(self.poll_interval)
        exit_record = sandbox.read_json(sandbox.exit_file)
        if exit_record is not None and "error" in exit_record:
            raise SandboxStartFailed(str(exit_record["error"]))

    def _discard(self, sandbox: SandboxDir, cgroup: SandboxCgroup) -> None:
        try:
            cgroup.kill_all()
            cgroup.remove()
        finally:
            shutil.rmtree(sandbox.path, ignore_errors=True)

    async def stop(self, sandbox_id: str, grace_seconds: float) -> SandboxState:
        sandbox = self._sandbox(sandbox_id)
        async with self._lock(sandbox_id):
            await self._stop(sandbox, grace_seconds)
            return self._state(sandbox)

    async def _stop(self, sandbox: SandboxDir, grace_seconds: float) -> None:
        if self._exited(sandbox):
            return
        if grace_seconds > 0:
            self._signal_main(sandbox, signal.SIGTERM)
            if await self._wait_exited(sandbox, grace_seconds):
                return
        await asyncio.to_thread(self._cgroup(sandbox).kill_all)
        if not await self._wait_exited(sandbox, KILL_SETTLE_SECONDS):
            raise RuntimeFailure(f"sandbox {sandbox.sandbox_id} did not stop")
        if not sandbox.exit_file.exists():
            # The supervisor is gone: record the kill ourselves.
            sandbox.write_json(
                sandbox.exit_file,
                {"exit_code": 128 + signal.SIGKILL, "error": "the supervisor vanished"},
            )

    async def remove(self, sandbox_id: str) -> None:
        try:
            sandbox = self._sandbox(sandbox_id)
        except SandboxNotFound:
            return
        async with self._lock(sandbox_id):
            await self._stop(sandbox, 0)
            cgroup = self._cgroup(sandbox)
            await asyncio.to_thread(cgroup.remove)
            await asyncio.to_thread(shutil.rmtree, sandbox.path, True)
        self._locks.pop(sandbox_id, None)

    async def restart(self, sandbox_id: str, grace_seconds: float) -> SandboxState:
        sandbox = self._sandbox(sandbox_id)
        async with self._lock(sandbox_id):
            await self._stop(sandbox, grace_seconds)
            spec = self._spec(sandbox)
            cgroup = self._cgroup(sandbox)
            # A fresh cgroup: its OOM counter must describe the new run only.
            await asyncio.to_thread(cgroup.remove)
            sandbox.clear_run()
            await self._launch(sandbox, spec, cgroup)
            return self._state(sandbox)

    async def signal(self, sandbox_id: str, signum: int) -> None:
        self._signal_main(self._sandbox(sandbox_id), signum)

    async def inspect(self, sandbox_id: str) -> SandboxState:
        return self._state(self._sandbox(sandbox_id))

    async def list_sandboxes(self, agent_id: str) -> list[SandboxState]:
        states = await asyncio.to_thread(self._all_sandboxes)
        return [state for state, _ in states if state.labels.get(LABEL_AGENT_ID) == agent_id]

    async def wait(self, sandbox_id: str) -> SandboxState:
        sandbox = self._sandbox(sandbox_id)
        await self._wait_exited(sandbox, None)
        return self._state(sandbox)

    async def logs(
        self, sandbox_id: str, *, tail: int | None, follow: bool, since: datetime | None
    ) -> AsyncIterator[LogLine]:
        sandbox = self._sandbox(sandbox_id)
        reader = LogReader(sandbox.log_file, since)
        exited = self._exited(sandbox)
        lines = await asyncio.to_thread(reader.read_new)
        if tail is not None:
            lines = lines[-tail:] if tail > 0 else []
        for line in lines:
            yield line
        while follow and not exited:
            await asyncio.sleep(self.poll_interval)
            # Exit is recorded after the last line is written: check it first.
            exited = self._exited(sandbox)
            for line in await asyncio.to_thread(reader.read_new):
                yield line

    async def stats(self, sandbox_id: str) -> SandboxStats:
        paths = CgroupPaths.of(self._cgroup(self._sandbox(sandbox_id)).relative)
        try:
            counters = await asyncio.to_thread(read_counters, paths)
        except OSError:
            # The cgroup is gone with the sandbox.
            return SandboxStats(cpu_used_ns=0, mem_used_bytes=0, mem_limit_bytes=0)
        return SandboxStats(
            cpu_used_ns=counters.cpu_used_ns,
            mem_used_bytes=counters.mem_used_bytes,
            mem_limit_bytes=counters.mem_limit_bytes,
            io_read_bytes=counters.io_read_bytes,
            io_write_bytes=counters.io_write_bytes,
        )

    async def close(self) -> None:
        """Nothing to release: sandboxes and their supervisors outlive the runtime."""

    # -- state -------------------------------------------------------------------

    def _lock(self, sandbox_id: str) -> asyncio.Lock:
        return self._locks.setdefault(sandbox_id, asyncio.Lock())

    def _cgroup_layout(self) -> CgroupLayout | None:
        if self._layout is None:
            self._layout = detect_layout()
        return self._layout

    def _sandbox(self, sandbox_id: str) -> SandboxDir:
        sandbox = SandboxDir(self.state_dir / sandbox_id)
        if "/" in sandbox_id or not sandbox.spec_file.is_file():
            raise SandboxNotFound(f"no sandbox {sandbox_id}")
        return sandbox

    def _spec(self, sandbox: SandboxDir) -> SandboxSpec:
        data = sandbox.read_json(sandbox.spec_file)
        if data is None:
            raise SandboxNotFound(f"no sandbox {sandbox.sandbox_id}")
        return spec_from_json(data)

    def _cgroup(self, sandbox: SandboxDir) -> SandboxCgroup:
        layout = self._cgroup_layout()
        if layout is None:
            raise RuntimeUnavailable("no cgroup memory controller is mounted")
        return SandboxCgroup.for_sandbox(layout, self.cgroup_parent, sandbox.sandbox_id)

    def _exited(self, sandbox: SandboxDir) -> bool:
        if sandbox.exit_file.exists():
            return True
        if sandbox.supervisor_alive():
            return False
        # The supervisor is gone without a record; the sandbox may still run.
        return not self._cgroup(sandbox).pids()

    async def _wait_exited(self, sandbox: SandboxDir, within_seconds: float | None) -> bool:
        loop = asyncio.get_running_loop()
        deadline = None if within_seconds is None else loop.time() + within_seconds
        while not self._exited(sandbox):
            if deadline is not None and loop.time() >= deadline:
                return False
            await asyncio.sleep(self.poll_interval)
        return True

    def _main_pid(self, sandbox: SandboxDir) -> int | None:
        return sandbox.main_pid(self._cgroup(sandbox).pids())

    def _signal_main(self, sandbox: SandboxDir, signum: int) -> None:
        pid = self._main_pid(sandbox)
        if pid is None:
            return
        try:
            os.kill(pid, signum)
        except ProcessLookupError:
            pass

    def _state(self, sandbox: SandboxDir) -> SandboxState:
        spec = self._spec(sandbox)
        running = not self._exited(sandbox)
        started = sandbox.read_json(sandbox.started_file)
        exit_record = sandbox.read_json(sandbox.exit_file)
        exit_code: int | None = None
        oom_killed = False
        if not running:
            exit_code = LOST_EXIT_CODE if exit_record is None else int(exit_record["exit_code"])
            oom_killed = self._cgroup(sandbox).oom_kills() > 0
        return SandboxState(
            sandbox_id=sandbox.sandbox_id,
            kernel_id=spec.kernel_id,
            labels=spec.labels,
            running=running,
            exit_code=exit_code,
            oom_killed=oom_killed,
            started_at=record_time(started, "started_at"),
            finished_at=record_time(exit_record, "finished_at"),
        )

    def _all_sandboxes(self) -> list[tuple[SandboxState, SandboxSpec]]:
        if not self.state_dir.is_dir():
            return []
        found = []
        for path in sorted(self.state_dir.iterdir()):
            sandbox = SandboxDir(path)
            try:
                found.append((self._state(sandbox), self._spec(sandbox)))
            except SandboxNotFound:
                continue
        return found
