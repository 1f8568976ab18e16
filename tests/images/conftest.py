"""A mini registry serving test images, and dockerd clean-up after the tests.

The kernel image is built FROM the local one with a label unique to the run,
so that no image with its id exists before the first pull; it is published
under several repositories so that each test pulls a name the node does not
have yet. A second image, FROM scratch with a layer of random bytes, is
pulled by one test only: its layer is new to dockerd (which remembers every
layer it has seen), so that pull really downloads and reports bytes.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from tests.support.mini_registry import MiniRegistry, Store, publish, saved_images

BASE_IMAGE = "bai.local/stable/python:3.11"
TEST_LABEL = "ai.bai.test.registry"
KERNEL_REPOSITORIES = (
    "r2/agent:1",
    "r2/credentials:1",
    "r2/none:1",
    "r2/session:1",
    "r2/manager:1",
)
FRESH_REPOSITORY = "r2/fresh:1"
USERNAME, PASSWORD = "puller", "right-password"


def _docker(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(["docker", *args], capture_output=True, text=True, timeout=300)


def _why_no_docker() -> str:
    if not os.path.exists("/var/run/docker.sock"):
        return "dockerd is not running here (/var/run/docker.sock is absent)"
    if _docker("image", "inspect", BASE_IMAGE).returncode != 0:
        return f"{BASE_IMAGE} is not built (bai agent build-image)"
    return ""


@dataclass
class Registries:
    open: MiniRegistry
    # The same images behind basic auth (USERNAME, PASSWORD).
    locked: MiniRegistry
    store: Store
    label_value: str


def _build(tag: str, dockerfile: str, context: Path) -> None:
    (context / "Dockerfile").write_text(dockerfile)
    built = _docker("build", "-q", "-t", tag, str(context))
    assert built.returncode == 0, built.stderr


def _build_sources(label_value: str, context: Path) -> dict[str, str]:
    """Local image -> the first repository it is served as."""
    kernel = f"bai.test/registry-kernel:{label_value}"
    _build(kernel, f"FROM {BASE_IMAGE}\nLABEL {TEST_LABEL}={label_value}\n", context)
    fresh = f"bai.test/registry-fresh:{label_value}"
    (context / "noise.bin").write_bytes(os.urandom(8 << 20))
    _build(fresh, "FROM scratch\nCOPY noise.bin /noise.bin\n", context)
    return {kernel: KERNEL_REPOSITORIES[0], fresh: FRESH_REPOSITORY}


def _remove_pulled(hosts: list[str]) -> None:
    listed = _docker("images", "--format", "{{.Repository}}:{{.Tag}}").stdout.split()
    pulled = [ref for ref in listed if any(ref.startswith(host + "/") for host in hosts)]
    if pulled:
        _docker("rmi", "-f", *pulled)


@pytest.fixture(scope="session")
def registries(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Registries]:
    reason = _why_no_docker()
    if reason:
        pytest.skip(reason)
    label_value = uuid.uuid4().hex[:12]
    sources = _build_sources(label_value, tmp_path_factory.mktemp("image"))
    try:
        store = saved_images(sources)
    finally:
        _docker("rmi", "-f", *sources)
    for target in KERNEL_REPOSITORIES[1:]:
        publish(store, KERNEL_REPOSITORIES[0], target)
    served = Registries(
        MiniRegistry(store), MiniRegistry(store, USERNAME, PASSWORD), store, label_value
    )
    try:
        yield served
    finally:
        _remove_pulled([served.open.host, served.locked.host])
        served.open.close()
        served.locked.close()
        shutil.rmtree(store.workdir, ignore_errors=True)
