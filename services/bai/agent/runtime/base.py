"""The interface every kernel runtime implements, and the data it exchanges.

A runtime runs one kernel as one sandbox (a Docker container, or a bubblewrap
process tree in its own cgroup). It knows nothing about sessions, the manager
or gRPC: the agent's kernel manager decides what to run and records state; the
runtime starts, stops, inspects and observes sandboxes. Every sandbox carries
the labels it was created with, so that a restarted agent can find its kernels
again (`list_kernels`).

Errors: runtimes raise `RuntimeFailure` subclasses below, never a library's
own exceptions.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from datetime import datetime
from decimal import Decimal
from pathlib import Path
from typing import Literal, Protocol

# Labels every sandbox carries (besides the image's own ai.backend.* labels).
LABEL_AGENT_ID = "ai.bai.agent-id"
LABEL_KERNEL_ID = "ai.bai.kernel-id"
LABEL_SESSION_ID = "ai.bai.session-id"


class RuntimeFailure(Exception):
    """Base of runtime errors."""


class RuntimeUnavailable(RuntimeFailure):
    """The runtime itself cannot be reached (dockerd down, bwrap missing)."""


class ImageMissing(RuntimeFailure):
    """The image is not present on this node (and pulling was not asked for)."""


class ImagePullFailed(RuntimeFailure):
    """Pulling the image failed."""


class SandboxNotFound(RuntimeFailure):
    """No sandbox with this id exists (any more)."""


class SandboxStartFailed(RuntimeFailure):
    """The sandbox could not be created or started."""


class CommitUnsupported(RuntimeFailure):
    """This runtime cannot turn a sandbox's filesystem into an image."""


class ImagePushFailed(RuntimeFailure):
    """Pushing an image to its registry failed."""


@dataclass(frozen=True)
class BindMount:
    source: Path
    target: str
    read_only: bool = False


@dataclass(frozen=True)
class PortMapping:
    container_port: int
    host_port: int


@dataclass(frozen=True)
class SandboxSpec:
    """Everything a runtime needs to start one kernel's sandbox."""

    kernel_id: str
    session_id: str
    agent_id: str
    # Runtime image reference (a Docker tag/id; for the process runtime, a
    # rootfs directory name registered with it).
    image: str
    # argv of the sandbox's main process (the kernel runner).
    command: list[str]
    environ: dict[str, str]
    # Whole and fractional cores; 0 = unlimited.
    cpu_limit: Decimal
    # Bytes; 0 = unlimited. Exceeding it kills the sandbox (OOM).
    mem_limit: int
    # /dev/shm size in bytes; 0 = runtime default.
    shmem_bytes: int = 0
    mounts: list[BindMount] = field(default_factory=list)
    ports: list[PortMapping] = field(default_factory=list)
    labels: dict[str, str] = field(default_factory=dict)
    hostname: str = ""
    work_dir: str = "/home/work"
    # Device nodes to expose (e.g. /dev/nvidia0) and Docker DeviceRequests
    # style GPU ids for runtimes that support them.
    devices: list[str] = field(default_factory=list)
    gpu_device_ids: list[str] = field(default_factory=list)
    # Cores the sandbox is bound to, as a cpuset list ("0,3"); "" = any.
    cpuset: str = ""


@dataclass(frozen=True)
class SandboxState:
    """What the runtime reports about one sandbox."""

    sandbox_id: str
    kernel_id: str
    labels: dict[str, str]
    running: bool
    # Set once the main process has exited.
    exit_code: int | None = None
    # True when the kernel was killed for exceeding its memory limit.
    oom_killed: bool = False
    started_at: datetime | None = None
    finished_at: datetime | None = None


@dataclass(frozen=True)
class ImageInfo:
    """An image present on the node."""

    ref: str
    # "sha256:<hex>" of the image config (Docker image id), or "" if unknown.
    digest: str
    size_bytes: int
    labels: dict[str, str]
    architecture: str
    created_at: datetime | None = None
    tags: list[str] = field(default_factory=list)
    # Built or imported on this node (no registry digest): never pulled.
    is_local: bool = False


@dataclass(frozen=True)
class LogLine:
    stream: Literal["stdout", "stderr"]
    time: datetime
    data: bytes


@dataclass(frozen=True)
class SandboxStats:
    """One sample. Counters are cumulative since the sandbox started."""

    cpu_used_ns: int
    mem_used_bytes: int
    mem_limit_bytes: int
    net_rx_bytes: int = 0
    net_tx_bytes: int = 0
    io_read_bytes: int = 0
    io_write_bytes: int = 0


@dataclass(frozen=True)
class PullProgress:
    current_bytes: int
    total_bytes: int
    message: str


class KernelRuntime(Protocol):
    """One container technology. All methods are safe to call concurrently."""

    name: str

    async def describe(self) -> str:
        """e.g. "docker 20.10.24" or "process (bubblewrap 0.8.0)"; raises RuntimeUnavailable."""
        ...

    async def list_images(self) -> list[ImageInfo]: ...

    async def inspect_image(self, ref: str) -> ImageInfo | None:
        """None when the image is not present."""
        ...

    def pull_image(self, ref: str, auth: dict[str, str] | None) -> AsyncIterator[PullProgress]:
        """Pull `ref`, yielding progress; raises ImagePullFailed at the end on failure,
        ImageMissing when the registry has no such image."""
        ...

    async def remove_image(self, ref: str, force: bool) -> None: ...

    async def commit(self, sandbox_id: str, ref: str, labels: dict[str, str]) -> ImageInfo:
        """Save the running sandbox's filesystem as image `ref` ("repo:tag") with the
        source image's defaults plus `labels`; the sandbox's own environment and labels
        do not become the image's. Raises CommitUnsupported, SandboxNotFound."""
        ...

    def push_image(self, ref: str, auth: dict[str, str] | None) -> AsyncIterator[PullProgress]:
        """Push `ref` to the registry its name holds, yielding progress; raises
        ImagePushFailed (ImageMissing when `ref` is not present)."""
        ...

    async def start(self, spec: SandboxSpec) -> SandboxState:
        """Create and start the sandbox; raises ImageMissing or SandboxStartFailed."""
        ...

    async def stop(self, sandbox_id: str, grace_seconds: float) -> SandboxState:
        """SIGTERM, then SIGKILL after the grace period (0: at once). Idempotent."""
        ...

    async def remove(self, sandbox_id: str) -> None:
        """Remove a stopped sandbox and its runtime state. Idempotent."""
        ...

    async def restart(self, sandbox_id: str, grace_seconds: float) -> SandboxState: ...

    async def signal(self, sandbox_id: str, signum: int) -> None:
        """Send a signal to the sandbox's main process."""
        ...

    async def inspect(self, sandbox_id: str) -> SandboxState:
        """Raises SandboxNotFound."""
        ...

    async def list_sandboxes(self, agent_id: str) -> list[SandboxState]:
        """Sandboxes (running or exited) labelled with this agent id."""
        ...

    async def wait(self, sandbox_id: str) -> SandboxState:
        """Block until the main process exits; returns the final state."""
        ...

    def logs(
        self, sandbox_id: str, *, tail: int | None, follow: bool, since: datetime | None
    ) -> AsyncIterator[LogLine]:
        """The sandbox's stdout/stderr, oldest first; with follow, until it exits."""
        ...

    async def stats(self, sandbox_id: str) -> SandboxStats:
        """Read counters now (cgroup files, not a slow stats API)."""
        ...

    async def close(self) -> None: ...


@dataclass(frozen=True)
class RuntimeChoice:
    """Config: "docker", "process", or "auto" (docker when dockerd answers)."""

    kind: Literal["auto", "docker", "process"] = "auto"
    docker_socket: str = "unix:///var/run/docker.sock"
    # Process runtime: where image rootfs trees live (one directory per image).
    rootfs_dir: Path = Path("/var/lib/bai/rootfs")
