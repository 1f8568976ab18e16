"""Picking the kernel runtime from config: Docker, the process runtime, or "auto"
(Docker when dockerd answers, else the process runtime)."""

from __future__ import annotations

import logging
from pathlib import Path

from bai.agent.runtime.base import KernelRuntime, RuntimeChoice, RuntimeUnavailable
from bai.agent.runtime.process import ProcessRuntime

log = logging.getLogger(__name__)


def _docker(choice: RuntimeChoice) -> KernelRuntime:
    # Imported here so that a host without Docker never loads aiodocker.
    from bai.agent.runtime.docker import DockerRuntime

    return DockerRuntime(choice.docker_socket)


def _process(choice: RuntimeChoice, state_dir: Path) -> KernelRuntime:
    return ProcessRuntime(choice.rootfs_dir, state_dir / "sandboxes")


async def select_runtime(choice: RuntimeChoice, state_dir: Path) -> KernelRuntime:
    """The runtime `choice` names. `state_dir` is the agent's; the process runtime
    keeps its sandboxes under `state_dir/sandboxes`."""
    if choice.kind == "docker":
        return _docker(choice)
    if choice.kind == "process":
        return _process(choice, state_dir)
    docker = _docker(choice)
    try:
        description = await docker.describe()
    except RuntimeUnavailable as e:
        await docker.close()
        log.info("docker is unavailable (%s); using the process runtime", e)
        return _process(choice, state_dir)
    log.info("using %s", description)
    return docker
