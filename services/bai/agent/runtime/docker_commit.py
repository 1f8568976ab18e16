"""Committing a kernel's container to an image, and pushing images, through aiodocker.

dockerd builds a committed image's config from the config we pass merged with the
*container's* config: every Env key and label the container has that ours lacks is
copied in. A kernel's Env holds per-kernel values (its id, its GPUs, the user's own
variables such as tokens) and its labels name the agent, kernel and session, so
`commit_config` names every such key with an empty value: dockerd then keeps ours.
Cmd, Entrypoint, WorkingDir and User are the source image's. What the merge still
adds cannot be masked this way: the container's exposed ports and volumes, and its
Cmd when the source image has neither Cmd nor Entrypoint (the agent's runner argv,
the same for every kernel; kernels are always started with an explicit command).
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any

import aiodocker

from bai.agent.runtime.base import (
    ImagePushFailed,
    PullProgress,
    RuntimeFailure,
    SandboxNotFound,
)
from bai.agent.runtime.docker_errors import docker_errors, relay_progress
from bai.common.image_refs import DEFAULT_TAG

# Config fields the committed image takes from the source image as they are.
IMAGE_DEFAULTS = ("Cmd", "Entrypoint", "WorkingDir", "User", "StopSignal")


def split_reference(ref: str) -> tuple[str, str]:
    """The repository and tag of a reference: "registry:5000/project/name:v1" ->
    ("registry:5000/project/name", "v1"); one without a tag gets "latest"."""
    repository, colon, tag = ref.rpartition(":")
    if not colon or "/" in tag:
        return ref, DEFAULT_TAG
    return repository, tag


def _env_key(entry: str) -> str:
    return entry.partition("=")[0]


def commit_config(
    container: dict[str, Any], image: dict[str, Any], labels: dict[str, str]
) -> dict[str, Any]:
    """The config to pass to dockerd's commit, from the container's and its source
    image's inspect data and the labels the new image gets."""
    container_config = container.get("Config") or {}
    image_config = image.get("Config") or {}
    image_env = [str(entry) for entry in image_config.get("Env") or []]
    image_keys = {_env_key(entry) for entry in image_env}
    masked_env = [
        f"{key}="
        for key in dict.fromkeys(
            _env_key(str(entry)) for entry in container_config.get("Env") or []
        )
        if key not in image_keys
    ]
    image_labels = {str(k): str(v) for k, v in (image_config.get("Labels") or {}).items()}
    masked_labels = {
        str(key): "" for key in container_config.get("Labels") or {} if key not in image_labels
    }
    config: dict[str, Any] = {
        key: image_config[key] for key in IMAGE_DEFAULTS if image_config.get(key) is not None
    }
    config["Env"] = [*image_env, *masked_env]
    config["Labels"] = {**image_labels, **masked_labels, **labels}
    return config


async def commit_container(
    docker: aiodocker.Docker, sandbox_id: str, ref: str, labels: dict[str, str]
) -> dict[str, Any]:
    """Commit the container (paused meanwhile) as `ref`; the new image's inspect data."""
    with docker_errors(SandboxNotFound, f"sandbox {sandbox_id}"):
        container = await docker.containers.get(sandbox_id)
    source_id = str(container._container.get("Image", ""))
    with docker_errors(RuntimeFailure, f"source image {source_id} of sandbox {sandbox_id}"):
        source = await docker.images.inspect(source_id)
    config = commit_config(container._container, source, labels)
    repository, tag = split_reference(ref)
    with docker_errors(SandboxNotFound, f"commit sandbox {sandbox_id}"):
        committed = await container.commit(
            repository=repository, tag=tag, config=config, pause=True
        )
    with docker_errors(RuntimeFailure, f"committed image {ref}"):
        return await docker.images.inspect(str(committed["Id"]))


async def push_image(
    docker: aiodocker.Docker, ref: str, auth: dict[str, str] | None
) -> AsyncIterator[PullProgress]:
    """Push `ref`, yielding progress; raises ImagePushFailed (dockerd reports a refused
    or unreachable registry inside the stream), ImageMissing, RuntimeUnavailable."""
    repository, tag = split_reference(ref)
    events = docker.images.push(repository, tag=tag, auth=auth, stream=True)
    async for progress in relay_progress(events, f"push {ref}", ImagePushFailed):
        yield progress
