"""What dockerd says about kernel containers (the docker CLI, read-only here)."""

from __future__ import annotations

import subprocess
from pathlib import Path

from tests.e2e.waits import DEADLINE, eventually

IMAGE = "bai.local/stable/python:3.11"
DOCKER_SOCKET = Path("/var/run/docker.sock")


def docker(*args: str) -> str:
    return subprocess.run(
        ["docker", *args], check=True, capture_output=True, text=True, timeout=60
    ).stdout


def containers(label: str, value: str, *, running_only: bool = False) -> list[str]:
    """Ids of the containers with this label value (all states unless running_only)."""
    flags = [] if running_only else ["-a"]
    out = docker("ps", *flags, "-q", "--filter", f"label={label}={value}")
    return out.split()


def kernel_containers(kernel_id: str, *, running_only: bool = False) -> list[str]:
    return containers("ai.bai.kernel-id", kernel_id, running_only=running_only)


async def wait_no_container(
    kernel_id: str, *, running_only: bool = False, limit: float = DEADLINE
) -> None:
    """Until no container (running_only: no running one) of the kernel is left."""
    what = "runs" if running_only else "is left"
    await eventually(
        lambda: not kernel_containers(kernel_id, running_only=running_only),
        f"no container of kernel {kernel_id} {what}",
        limit,
    )
