"""DockerRuntime.pull_image against the mini registry: progress, credentials."""

from __future__ import annotations

from collections.abc import AsyncIterator

import pytest

from bai.agent.runtime.base import ImagePullFailed, PullProgress
from bai.agent.runtime.docker import DockerRuntime
from tests.images.conftest import FRESH_REPOSITORY, PASSWORD, TEST_LABEL, USERNAME, Registries


@pytest.fixture
async def runtime() -> AsyncIterator[DockerRuntime]:
    docker = DockerRuntime()
    try:
        yield docker
    finally:
        await docker.close()


async def test_a_first_pull_reports_byte_progress_and_yields_the_registry_image(
    registries: Registries, runtime: DockerRuntime
) -> None:
    ref = registries.open.reference(FRESH_REPOSITORY)
    assert await runtime.inspect_image(ref) is None
    seen: list[PullProgress] = [p async for p in runtime.pull_image(ref, None)]
    assert any(p.total_bytes > 0 and p.current_bytes > 0 for p in seen), seen
    assert any("Downloaded newer image" in p.message for p in seen)
    info = await runtime.inspect_image(ref)
    assert info is not None
    config_digests = {
        digest for digest, blob in registries.store.blobs.items() if blob.path is None
    }
    assert info.digest in config_digests


async def test_credentials_are_sent_and_wrong_ones_fail(
    registries: Registries, runtime: DockerRuntime
) -> None:
    ref = registries.locked.reference("r2/credentials:1")
    with pytest.raises(ImagePullFailed):
        async for _ in runtime.pull_image(ref, {"username": USERNAME, "password": "wrong"}):
            pass
    assert await runtime.inspect_image(ref) is None
    auth = {"username": USERNAME, "password": PASSWORD}
    async for _ in runtime.pull_image(ref, auth):
        pass
    info = await runtime.inspect_image(ref)
    assert info is not None and info.labels[TEST_LABEL] == registries.label_value
