"""Committing a container to an image: the config dockerd is given (pure), and a real
commit on the real dockerd whose image keeps the filesystem but not the kernel's own
environment and labels."""

from __future__ import annotations

import asyncio
import io
import json
import subprocess
import tarfile
import uuid
from collections.abc import AsyncIterator
from dataclasses import replace
from decimal import Decimal
from typing import Any

import aiodocker
import pytest

from bai.agent.runtime.base import (
    LABEL_AGENT_ID,
    LABEL_KERNEL_ID,
    LABEL_SESSION_ID,
    ImagePushFailed,
    SandboxNotFound,
    SandboxSpec,
    SandboxState,
)
from bai.agent.runtime.docker import DockerRuntime
from bai.agent.runtime.docker_commit import commit_config, split_reference
from tests.agent.runtime.fake_registry import running_registry

CONTAINER = {
    "Config": {
        "Env": ["PATH=/usr/bin", "LANG=override", "SECRET_TOKEN=hunter2", "FLAG", "SECRET_TOKEN=x"],
        "Labels": {"ai.backend.kernelspec": "1", LABEL_KERNEL_ID: "k-1", LABEL_AGENT_ID: "a-1"},
        "Cmd": ["/opt/bai/runner/start"],
        "WorkingDir": "/home/work",
        "Hostname": "main1",
    }
}
IMAGE = {
    "Config": {
        "Env": ["PATH=/usr/bin", "LANG=C.UTF-8"],
        "Labels": {"ai.backend.kernelspec": "1"},
        "Cmd": ["python3"],
        "Entrypoint": None,
        "WorkingDir": "/srv",
        "User": "work",
    }
}


def test_commit_config_masks_what_only_the_container_has() -> None:
    config = commit_config(CONTAINER, IMAGE, {"ai.bai.note": "mine", "ai.backend.kernelspec": "2"})
    # The image's values win; each container-only key is named once, empty.
    assert config["Env"] == ["PATH=/usr/bin", "LANG=C.UTF-8", "SECRET_TOKEN=", "FLAG="]
    assert config["Labels"] == {
        "ai.backend.kernelspec": "2",
        LABEL_KERNEL_ID: "",
        LABEL_AGENT_ID: "",
        "ai.bai.note": "mine",
    }
    assert (config["Cmd"], config["WorkingDir"], config["User"]) == (["python3"], "/srv", "work")
    assert "Entrypoint" not in config and "Hostname" not in config


def test_commit_config_of_a_bare_image() -> None:
    config = commit_config(CONTAINER, {"Config": None}, {})
    assert config == {
        "Env": ["PATH=", "LANG=", "SECRET_TOKEN=", "FLAG="],
        "Labels": {"ai.backend.kernelspec": "", LABEL_KERNEL_ID: "", LABEL_AGENT_ID: ""},
    }


@pytest.mark.parametrize(
    ("ref", "split"),
    [
        ("bai.local/customized/abc/myimg:v1", ("bai.local/customized/abc/myimg", "v1")),
        ("localhost:5000/x/y:3.11-a", ("localhost:5000/x/y", "3.11-a")),
        ("localhost:5000/x/y", ("localhost:5000/x/y", "latest")),
        ("python", ("python", "latest")),
    ],
)
def test_split_reference(ref: str, split: tuple[str, str]) -> None:
    assert split_reference(ref) == split


@pytest.fixture
async def made(docker_runtime: DockerRuntime) -> AsyncIterator[tuple[list[str], list[str]]]:
    """Sandboxes and images a test makes; removed afterwards whatever happens."""
    sandboxes: list[str] = []
    images: list[str] = []
    yield sandboxes, images
    for sandbox_id in sandboxes:
        await docker_runtime.remove(sandbox_id)
    for ref in images:
        await docker_runtime.remove_image(ref, force=True)


def sandbox_spec(image: str, agent_id: str, command: str) -> SandboxSpec:
    return SandboxSpec(
        kernel_id=uuid.uuid4().hex,
        session_id=uuid.uuid4().hex,
        agent_id=agent_id,
        image=image,
        command=["sh", "-c", command],
        environ={"SECRET_TOKEN": "hunter2", "LANG": "override"},
        cpu_limit=Decimal(0),
        mem_limit=0,
    )


async def output(runtime: DockerRuntime, state: SandboxState, *, follow: bool) -> str:
    lines = []
    async for line in runtime.logs(state.sandbox_id, tail=None, follow=follow, since=None):
        lines.append(line.data.decode())
        if follow:
            break
    return "".join(lines)


async def test_commit_keeps_the_filesystem_not_the_kernel(
    docker_runtime: DockerRuntime,
    kernel_image: str,
    test_agent_id: str,
    made: tuple[list[str], list[str]],
) -> None:
    sandboxes, images = made
    ref = f"bai.local/customized/test-{uuid.uuid4().hex[:8]}/commit:v1"
    images.append(ref)
    writer = await docker_runtime.start(
        sandbox_spec(
            kernel_image, test_agent_id, "echo committed > /tmp/marker; echo ready; exec sleep 300"
        )
    )
    sandboxes.append(writer.sandbox_id)
    # The first line comes after the marker is written.
    assert await output(docker_runtime, writer, follow=True) == "ready\n"

    info = await docker_runtime.commit(writer.sandbox_id, ref, {"ai.bai.test-commit": "yes"})

    assert info.ref == ref and ref in info.tags
    assert info.digest.startswith("sha256:") and info.size_bytes > 0
    assert info.labels["ai.bai.test-commit"] == "yes"
    assert info.labels["ai.backend.kernelspec"] == "1"  # the source image's
    for label in (LABEL_AGENT_ID, LABEL_KERNEL_ID, LABEL_SESSION_ID):
        assert info.labels[label] == ""
    assert info.is_local
    assert (await docker_runtime.inspect(writer.sandbox_id)).running  # unpaused again
    async with aiodocker.Docker() as docker:
        config: dict[str, Any] = (await docker.images.inspect(ref))["Config"]
    assert "SECRET_TOKEN=" in config["Env"] and "LANG=C.UTF-8" in config["Env"]
    assert not [e for e in config["Env"] if "hunter2" in e or e == "LANG=override"]
    assert config["WorkingDir"] == "/home/work"

    reader_spec = sandbox_spec(ref, test_agent_id, "cat /tmp/marker; echo token=[$SECRET_TOKEN]")
    reader = await docker_runtime.start(replace(reader_spec, environ={}))
    sandboxes.append(reader.sandbox_id)
    await docker_runtime.wait(reader.sandbox_id)
    assert await output(docker_runtime, reader, follow=False) == "committed\ntoken=[]\n"


async def test_commit_of_a_missing_sandbox(docker_runtime: DockerRuntime) -> None:
    with pytest.raises(SandboxNotFound):
        await docker_runtime.commit("no-such-sandbox", "bai.local/x/y:v1", {})


async def test_push_to_an_unreachable_registry_fails(
    docker_runtime: DockerRuntime, kernel_image: str, made: tuple[list[str], list[str]]
) -> None:
    ref = f"127.0.0.1:9/test-{uuid.uuid4().hex[:8]}/push:v1"
    _, images = made
    async with aiodocker.Docker() as docker:
        repository, tag = split_reference(ref)
        await docker.images.tag(kernel_image, repository, tag=tag)
    images.append(ref)
    with pytest.raises(ImagePushFailed, match=r"127\.0\.0\.1:9"):
        async for _ in docker_runtime.push_image(ref, None):
            pass


def tiny_image_tar() -> bytes:
    """A one-file root filesystem: an image that pushes in moments."""
    data = b"tiny\n"
    buffer = io.BytesIO()
    with tarfile.open(fileobj=buffer, mode="w") as tar:
        entry = tarfile.TarInfo("hello.txt")
        entry.size = len(data)
        tar.addfile(entry, io.BytesIO(data))
    return buffer.getvalue()


async def test_push_with_credentials(
    docker_runtime: DockerRuntime, made: tuple[list[str], list[str]]
) -> None:
    _, images = made
    async with running_registry("pusher", "s3cret") as registry:
        ref = f"{registry.host}/test-{uuid.uuid4().hex[:8]}/tiny:v1"
        images.append(ref)
        await asyncio.to_thread(
            subprocess.run, ["docker", "import", "-", ref], input=tiny_image_tar(), check=True
        )
        # The registry answers only these credentials: a push that lands carried them.
        progress = [
            event
            async for event in docker_runtime.push_image(
                ref, {"username": "pusher", "password": "s3cret"}
            )
        ]
    assert progress and any(event.message == "Pushed" for event in progress)
    name, _, tag = ref.removeprefix(f"{registry.host}/").rpartition(":")
    manifest = json.loads(registry.manifests[f"{name}:{tag}"])
    pushed = await docker_runtime.inspect_image(ref)
    assert pushed is not None and manifest["config"]["digest"] == pushed.digest
    assert [layer["digest"] in registry.blobs for layer in manifest["layers"]] == [True]
