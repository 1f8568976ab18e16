"""The local kernel image builder: idempotence, labels, the kept rootfs, and the
host-copy fallback image running the kernel runner."""

from __future__ import annotations

import json
import os
import uuid
from decimal import Decimal
from pathlib import Path

from bai.agent.images.build import (
    CANONICAL_REF,
    DEFAULT_ROOTFS_DIR,
    LABEL_BUILD_METHOD,
    LABEL_BUILD_RECIPE,
    Recipe,
    build_image,
    docker_changes,
    labels_path,
    rootfs_path,
    sanitize_ref,
)
from bai.agent.runner.client import RunnerClient, RunSpec
from bai.agent.runner.layout import (
    RUN_MOUNT,
    RUNNER_MOUNT,
    SOCKET_FILE,
    runner_command,
    runner_package_dir,
)
from bai.agent.runtime.base import BindMount, SandboxSpec
from bai.agent.runtime.docker import DockerRuntime
from bai.common.image_labels import parse_image_labels
from tests.agent.runtime.runner_helpers import run


def test_sanitized_names_and_paths() -> None:
    assert sanitize_ref(CANONICAL_REF) == "bai.local_stable_python_3.11"
    root = Path("/var/lib/bai/rootfs")
    assert rootfs_path(root, CANONICAL_REF) == root / "bai.local_stable_python_3.11"
    assert labels_path(root, CANONICAL_REF) == root / "bai.local_stable_python_3.11.labels.json"


def test_recipe_digest_follows_the_recipe() -> None:
    assert Recipe().digest() == Recipe().digest()
    assert Recipe().digest() != Recipe(packages=("python3", "git")).digest()


def test_changes_quote_label_values() -> None:
    changes = docker_changes({"ai.backend.features": "query batch", "empty": ""})
    assert 'LABEL ai.backend.features="query batch"' in changes
    assert 'LABEL empty=""' in changes
    assert "WORKDIR /home/work" in changes


async def test_built_image_is_reused_and_described(
    kernel_image: str, docker_runtime: DockerRuntime
) -> None:
    again = build_image()
    assert again.skipped and again.ref == kernel_image
    info = await docker_runtime.inspect_image(kernel_image)
    assert info is not None
    assert info.labels[LABEL_BUILD_RECIPE] == Recipe().digest()
    labels = parse_image_labels(info.labels)
    assert labels.features == frozenset({"query", "batch", "uid-match"})
    assert labels.min_slots == {"cpu": "1", "mem": str(64 * 1024 * 1024)}
    kept = json.loads(labels_path(DEFAULT_ROOTFS_DIR, kernel_image).read_text())
    assert kept["labels"] == info.labels
    # The process runtime reports the rootfs by the same names as Docker does.
    assert (kept["ref"], kept["tags"]) == (kernel_image, ["bai.local/stable/python:latest"])
    rootfs = rootfs_path(DEFAULT_ROOTFS_DIR, kernel_image)
    assert (rootfs / "usr/bin/python3").exists()
    assert os.readlink(rootfs / "usr/local/bin/jupyter") == "/opt/jupyter/bin/jupyter"
    assert [(p.name, p.container_ports) for p in labels.service_ports] == [
        ("jupyter", (8091,)),
        ("jupyterlab", (8090,)),
    ]
    assert "work:x:1000:1000:" in (rootfs / "etc/passwd").read_text()
    latest = await docker_runtime.inspect_image("bai.local/stable/python:latest")
    assert latest is not None and latest.digest == info.digest


async def test_host_copy_image_runs_the_runner(
    docker_socket: str, docker_runtime: DockerRuntime, short_tmp: Path, test_agent_id: str
) -> None:
    ref = f"bai.local/test/hostcopy-{uuid.uuid4().hex[:8]}:3.11"
    rootfs_dir = short_tmp / "rootfs"
    try:
        built = build_image(ref=ref, rootfs_dir=rootfs_dir, method="host-copy")
        assert (built.method, built.skipped) == ("host-copy", False)
        assert build_image(ref=ref, rootfs_dir=rootfs_dir, method="host-copy").skipped
        info = await docker_runtime.inspect_image(ref)
        assert info is not None and info.labels[LABEL_BUILD_METHOD] == "host-copy"
        run_dir = short_tmp / "run"
        run_dir.mkdir()
        spec = SandboxSpec(
            kernel_id=uuid.uuid4().hex,
            session_id=uuid.uuid4().hex,
            agent_id=test_agent_id,
            image=ref,
            command=runner_command(),
            environ={},
            cpu_limit=Decimal(0),
            mem_limit=0,
            mounts=[
                BindMount(runner_package_dir(), RUNNER_MOUNT, read_only=True),
                BindMount(run_dir, RUN_MOUNT),
            ],
        )
        state = await docker_runtime.start(spec)
        try:
            client = RunnerClient(run_dir / SOCKET_FILE)
            await client.wait_ready(30)
            query = await run(client, RunSpec("query", "import json; json.dumps([1])"))
            assert query.text("stdout") == "'[1]'\n"
            batch = await run(client, RunSpec("batch", "echo $HOME; pwd"))
            assert batch.text("stdout") == "/home/work\n/home/work\n"
        finally:
            await docker_runtime.remove(state.sandbox_id)
    finally:
        await docker_runtime.remove_image(ref, force=True)
    assert await docker_runtime.inspect_image(ref) is None
