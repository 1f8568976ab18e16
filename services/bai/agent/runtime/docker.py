"""The Docker runtime: kernels as containers of a local dockerd, through aiodocker.

Containers run with Docker's init (tini) as PID 1 so that signals reach the
runner and zombies are reaped; MemorySwap equals Memory so that going over the
limit is an OOM kill rather than swapping. Counters come from the cgroup files
(`cgroups.py`) and the container's /proc/<pid>/net/dev, never from the stats
API. aiodocker's errors are turned into the runtime errors of `base.py`.
"""

from __future__ import annotations

import asyncio
import json
import math
from collections.abc import AsyncIterator
from datetime import UTC, datetime
from decimal import Decimal
from typing import Any

import aiodocker
from aiodocker.exceptions import DockerError

from bai.agent.runtime.base import (
    LABEL_AGENT_ID,
    LABEL_KERNEL_ID,
    LABEL_SESSION_ID,
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
from bai.agent.runtime.cgroups import docker_cgroup, read_counters, read_net_dev
from bai.agent.runtime.docker_commit import commit_container, push_image
from bai.agent.runtime.docker_errors import CONFLICT, NOT_MODIFIED, docker_errors, relay_progress
from bai.agent.runtime.docker_logs import demultiplex, parse_docker_time

DOCKER_ARCHITECTURES = {"amd64": "x86_64", "arm64": "aarch64", "arm64/v8": "aarch64"}
CONTAINER_NAME_PREFIX = "bai-kernel-"


def normalize_architecture(docker_arch: str, variant: str = "") -> str:
    """Docker's names to Backend.AI's ("amd64" -> "x86_64", "arm64" -> "aarch64")."""
    key = f"{docker_arch}/{variant}" if variant else docker_arch
    return DOCKER_ARCHITECTURES.get(key, DOCKER_ARCHITECTURES.get(docker_arch, docker_arch))


def container_config(spec: SandboxSpec) -> dict[str, Any]:
    """The Docker create-container body for a sandbox spec."""
    labels = {
        **spec.labels,
        LABEL_AGENT_ID: spec.agent_id,
        LABEL_KERNEL_ID: spec.kernel_id,
        LABEL_SESSION_ID: spec.session_id,
    }
    host: dict[str, Any] = {
        "Init": True,
        # Mounts rather than Binds: paths may hold ':' and a missing source fails the
        # start instead of being created as an empty root-owned directory.
        "Mounts": [
            {
                "Type": "bind",
                "Source": str(mount.source),
                "Target": mount.target,
                "ReadOnly": mount.read_only,
            }
            for mount in spec.mounts
        ],
        "PortBindings": {
            f"{port.container_port}/tcp": [{"HostIp": "0.0.0.0", "HostPort": str(port.host_port)}]
            for port in spec.ports
        },
    }
    if spec.cpu_limit > 0:
        host["NanoCpus"] = int(spec.cpu_limit * Decimal(1_000_000_000))
    if spec.cpuset:
        host["CpusetCpus"] = spec.cpuset
    if spec.mem_limit > 0:
        host["Memory"] = spec.mem_limit
        host["MemorySwap"] = spec.mem_limit
    if spec.shmem_bytes > 0:
        host["ShmSize"] = spec.shmem_bytes
    if spec.devices:
        host["Devices"] = [
            {"PathOnHost": path, "PathInContainer": path, "CgroupPermissions": "rwm"}
            for path in spec.devices
        ]
    if spec.gpu_device_ids:
        host["DeviceRequests"] = [
            {"Driver": "nvidia", "DeviceIDs": spec.gpu_device_ids, "Capabilities": [["gpu"]]}
        ]
    config: dict[str, Any] = {
        "Image": spec.image,
        "Cmd": spec.command,
        "Env": [f"{key}={value}" for key, value in spec.environ.items()],
        "Labels": labels,
        "WorkingDir": spec.work_dir,
        "ExposedPorts": {f"{port.container_port}/tcp": {} for port in spec.ports},
        "HostConfig": host,
    }
    if spec.hostname:
        config["Hostname"] = spec.hostname
    return config


def sandbox_state(info: dict[str, Any]) -> SandboxState:
    """SandboxState from a container's inspect data."""
    state = info.get("State") or {}
    labels = dict((info.get("Config") or {}).get("Labels") or {})
    running = bool(state.get("Running"))
    # A created-but-never-started container has no exit status yet.
    exited = not running and state.get("Status") in ("exited", "dead")
    return SandboxState(
        sandbox_id=str(info["Id"]),
        kernel_id=labels.get(LABEL_KERNEL_ID, ""),
        labels=labels,
        running=running,
        exit_code=int(state.get("ExitCode", 0)) if exited else None,
        oom_killed=bool(state.get("OOMKilled")),
        started_at=parse_docker_time(str(state.get("StartedAt") or "")),
        finished_at=parse_docker_time(str(state.get("FinishedAt") or "")) if exited else None,
    )


def image_info(ref: str, data: dict[str, Any]) -> ImageInfo:
    config = data.get("Config") or {}
    tags = [str(tag) for tag in data.get("RepoTags") or [] if tag != "<none>:<none>"]
    return ImageInfo(
        ref=ref,
        digest=str(data.get("Id", "")),
        size_bytes=int(data.get("Size") or 0),
        labels=dict(config.get("Labels") or {}),
        architecture=normalize_architecture(
            str(data.get("Architecture", "")), str(data.get("Variant", ""))
        ),
        created_at=parse_docker_time(str(data.get("Created") or "")),
        tags=tags,
        # Pulled images carry a registry digest; imported or built ones do not.
        is_local=not data.get("RepoDigests"),
    )


class DockerRuntime:
    name = "docker"

    def __init__(self, socket: str = "unix:///var/run/docker.sock") -> None:
        self.socket = socket
        self._docker: aiodocker.Docker | None = None

    def _client(self) -> aiodocker.Docker:
        # aiodocker binds its HTTP session to the running loop: create it on first use.
        if self._docker is None:
            self._docker = aiodocker.Docker(url=self.socket)
        return self._docker

    async def close(self) -> None:
        if self._docker is not None:
            await self._docker.close()
            self._docker = None

    async def describe(self) -> str:
        with docker_errors(RuntimeUnavailable, "version"):
            version = await self._client().version()
        return f"docker {version.get('Version', 'unknown')}"

    async def list_images(self) -> list[ImageInfo]:
        with docker_errors(RuntimeFailure, "list images"):
            summaries = await self._client().images.list()
        refs = []
        for summary in summaries:
            tags = [tag for tag in summary.get("RepoTags") or [] if tag != "<none>:<none>"]
            # Untagged images are build and commit leftovers that no session can name.
            if tags:
                refs.append(tags[0])
        found = await asyncio.gather(*(self.inspect_image(ref) for ref in refs))
        return [info for info in found if info is not None]

    async def inspect_image(self, ref: str) -> ImageInfo | None:
        try:
            with docker_errors(ImageMissing, f"image {ref}"):
                data = await self._client().images.inspect(ref)
        except ImageMissing:
            return None
        return image_info(ref, data)

    async def pull_image(
        self, ref: str, auth: dict[str, str] | None
    ) -> AsyncIterator[PullProgress]:
        """Raises ImageMissing when the registry has no such manifest (dockerd's 404)."""
        events = self._client().images.pull(ref, auth=auth, stream=True)
        async for progress in relay_progress(events, f"pull {ref}", ImagePullFailed):
            yield progress

    async def remove_image(self, ref: str, force: bool) -> None:
        try:
            with docker_errors(ImageMissing, f"image {ref}"):
                await self._client().images.delete(ref, force=force)
        except ImageMissing:
            return

    async def commit(self, sandbox_id: str, ref: str, labels: dict[str, str]) -> ImageInfo:
        return image_info(ref, await commit_container(self._client(), sandbox_id, ref, labels))

    def push_image(self, ref: str, auth: dict[str, str] | None) -> AsyncIterator[PullProgress]:
        return push_image(self._client(), ref, auth)

    async def start(self, spec: SandboxSpec) -> SandboxState:
        config = container_config(spec)
        name = f"{CONTAINER_NAME_PREFIX}{spec.kernel_id}"
        try:
            with docker_errors(ImageMissing, f"image {spec.image}"):
                container = await self._client().containers.create(config, name=name)
        except RuntimeFailure as exc:
            if isinstance(exc, RuntimeUnavailable | ImageMissing):
                raise
            raise SandboxStartFailed(str(exc)) from exc
        try:
            with docker_errors(SandboxStartFailed, f"start {name}"):
                await container.start()
        except RuntimeFailure as exc:
            await self.remove(container.id)
            if isinstance(exc, RuntimeUnavailable):
                raise
            raise SandboxStartFailed(str(exc)) from exc
        return await self.inspect(container.id)

    async def stop(self, sandbox_id: str, grace_seconds: float) -> SandboxState:
        container = self._client().containers.container(sandbox_id)
        with docker_errors(SandboxNotFound, f"sandbox {sandbox_id}"):
            try:
                if grace_seconds <= 0:
                    await container.kill(signal="SIGKILL")
                else:
                    await container.stop(t=math.ceil(grace_seconds))
            except DockerError as exc:
                # Not running (409) or already stopped (304): stopping is idempotent.
                if exc.status not in (CONFLICT, NOT_MODIFIED):
                    raise
            await container.wait(condition="not-running")
        return await self.inspect(sandbox_id)

    async def remove(self, sandbox_id: str) -> None:
        container = self._client().containers.container(sandbox_id)
        try:
            with docker_errors(SandboxNotFound, f"sandbox {sandbox_id}"):
                await container.delete(force=True, v=True)
        except SandboxNotFound:
            return

    async def restart(self, sandbox_id: str, grace_seconds: float) -> SandboxState:
        container = self._client().containers.container(sandbox_id)
        with docker_errors(SandboxNotFound, f"sandbox {sandbox_id}"):
            await container.restart(t=math.ceil(max(grace_seconds, 0)))
        return await self.inspect(sandbox_id)

    async def signal(self, sandbox_id: str, signum: int) -> None:
        container = self._client().containers.container(sandbox_id)
        with docker_errors(SandboxNotFound, f"sandbox {sandbox_id}"):
            await container.kill(signal=str(signum))

    async def _inspect_raw(self, sandbox_id: str) -> dict[str, Any]:
        with docker_errors(SandboxNotFound, f"sandbox {sandbox_id}"):
            container = await self._client().containers.get(sandbox_id)
        return dict(container._container)

    async def inspect(self, sandbox_id: str) -> SandboxState:
        return sandbox_state(await self._inspect_raw(sandbox_id))

    async def list_sandboxes(self, agent_id: str) -> list[SandboxState]:
        filters = json.dumps({"label": [f"{LABEL_AGENT_ID}={agent_id}"]})
        with docker_errors(RuntimeFailure, "list containers"):
            containers = await self._client().containers.list(all=True, filters=filters)
        states = await asyncio.gather(
            *(self.inspect(container.id) for container in containers), return_exceptions=True
        )
        # A container removed between the listing and its inspection is simply gone.
        return [state for state in states if isinstance(state, SandboxState)]

    async def wait(self, sandbox_id: str) -> SandboxState:
        container = self._client().containers.container(sandbox_id)
        with docker_errors(SandboxNotFound, f"sandbox {sandbox_id}"):
            await container.wait()
        return await self.inspect(sandbox_id)

    async def logs(
        self, sandbox_id: str, *, tail: int | None, follow: bool, since: datetime | None
    ) -> AsyncIterator[LogLine]:
        params: dict[str, Any] = {
            "stdout": True,
            "stderr": True,
            "timestamps": True,
            "follow": follow,
            "tail": "all" if tail is None else str(tail),
        }
        if since is not None:
            params["since"] = unix_time_text(since)
        query = self._client()._query(
            f"containers/{sandbox_id}/logs", method="GET", params=params, timeout=None
        )
        with docker_errors(SandboxNotFound, f"sandbox {sandbox_id}"):
            async with query as response:
                async for line in demultiplex(response.content):
                    yield line

    async def stats(self, sandbox_id: str) -> SandboxStats:
        info = await self._inspect_raw(sandbox_id)
        state = info.get("State") or {}
        pid = int(state.get("Pid") or 0)
        if not state.get("Running") or pid == 0:
            raise SandboxNotFound(f"sandbox {sandbox_id} is not running")
        paths = docker_cgroup(str(info["Id"]), pid)
        try:
            counters = read_counters(paths)
        except OSError as exc:
            raise SandboxNotFound(f"sandbox {sandbox_id} has no cgroup: {exc}") from exc
        rx, tx = read_net_dev(pid)
        return SandboxStats(
            cpu_used_ns=counters.cpu_used_ns,
            mem_used_bytes=counters.mem_used_bytes,
            mem_limit_bytes=counters.mem_limit_bytes,
            net_rx_bytes=rx,
            net_tx_bytes=tx,
            io_read_bytes=counters.io_read_bytes,
            io_write_bytes=counters.io_write_bytes,
        )


_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)


def unix_time_text(moment: datetime) -> str:
    """`moment` as Docker's "seconds.nanoseconds", exactly: through a float it can come
    out up to ~100 ns late at today's epoch, and `since` would then skip a log line
    written at that very microsecond (a naive datetime is local time, as timestamp())."""
    delta = moment.astimezone(UTC) - _EPOCH
    return f"{delta.days * 86400 + delta.seconds}.{delta.microseconds:06d}000"
