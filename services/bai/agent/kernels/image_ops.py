"""Images on the node: check per pull policy, pull with events, list, purge."""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass

from bai.agent.events import Outbox, timestamp
from bai.agent.runtime.base import (
    ImageInfo,
    ImageMissing,
    KernelRuntime,
    PullProgress,
    RuntimeFailure,
    RuntimeUnavailable,
)
from bai.api.agent.v1 import agent_pb2
from bai.api.common.v1 import image_pb2
from bai.api.manager.v1 import agent_registry_pb2 as reg
from bai.common.errors import BaiError, FailedPrecondition, NotFound

log = logging.getLogger(__name__)
PROGRESS_EVERY = 2.0


def image_not_found(ref: image_pb2.ImageRef) -> NotFound:
    return NotFound(
        f"image {ref.canonical} is not on this node",
        reason="IMAGE_NOT_FOUND",
        metadata={"reference": ref.canonical, "architecture": ref.architecture},
    )


def needs_pull(local: ImageInfo | None, ref: image_pb2.ImageRef, policy: int) -> bool:
    """Whether policy asks for a pull (an absent image under NONE fails elsewhere).

    An image this node holds as local (built here, or a process-runtime rootfs) has no
    registry to pull from, whatever the manager's ImageRef says."""
    if policy == image_pb2.IMAGE_PULL_POLICY_NONE or ref.is_local:
        return False
    if local is not None and local.is_local:
        return False
    if local is None or policy == image_pb2.IMAGE_PULL_POLICY_ALWAYS:
        return True
    if policy == image_pb2.IMAGE_PULL_POLICY_TAG:
        return False
    return bool(ref.digest) and ref.digest != local.digest


def registry_auth(ref: image_pb2.ImageRef) -> dict[str, str] | None:
    if not ref.registry.username:
        return None
    return {"username": ref.registry.username, "password": ref.registry.password}


@dataclass
class PullOutcome:
    info: ImageInfo
    pulled: bool


class ImageService:
    """Shares one pull per image between concurrent callers."""

    def __init__(self, runtime: KernelRuntime, outbox: Outbox) -> None:
        self.runtime = runtime
        self.outbox = outbox
        self._pulls: dict[str, asyncio.Future[None]] = {}

    def _event(
        self,
        kind: int,
        ref: image_pb2.ImageRef,
        progress: PullProgress | None = None,
        message: str = "",
    ) -> None:
        event = reg.ImageEvent(type=kind, time=timestamp(), image=ref, message=message)  # type: ignore[arg-type]
        event.image.registry.ClearField("password")
        if progress is not None:
            event.current_bytes = progress.current_bytes
            event.total_bytes = progress.total_bytes
        self.outbox.image_event(event)

    async def pull(self, ref: image_pb2.ImageRef) -> AsyncIterator[PullProgress]:
        """Pull `ref` (joining a pull already running); raises IMAGE_PULL_FAILED, or
        IMAGE_NOT_FOUND when the registry does not have it."""
        running = self._pulls.get(ref.canonical)
        if running is not None:
            await asyncio.shield(running)
            return
        done: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        self._pulls[ref.canonical] = done
        self._event(reg.IMAGE_EVENT_TYPE_PULL_STARTED, ref)
        last = 0.0
        try:
            async for progress in self.runtime.pull_image(ref.canonical, registry_auth(ref)):
                if time.monotonic() - last >= PROGRESS_EVERY:
                    last = time.monotonic()
                    self._event(reg.IMAGE_EVENT_TYPE_PULL_PROGRESS, ref, progress)
                yield progress
        except RuntimeFailure as exc:
            self._event(reg.IMAGE_EVENT_TYPE_PULL_FAILED, ref, message=str(exc))
            failure: BaiError = FailedPrecondition(
                f"pulling {ref.canonical} failed: {exc}",
                reason="IMAGE_PULL_FAILED",
                metadata={"image": ref.canonical, "detail": str(exc)},
            )
            if isinstance(exc, ImageMissing):
                # The registry has no such image: not found rather than a failed pull.
                failure = image_not_found(ref)
                failure.metadata["detail"] = str(exc)
            done.set_exception(failure)
            done.exception()  # retrieved: joined callers re-raise their own copy
            raise failure from exc
        finally:
            self._pulls.pop(ref.canonical, None)
            if not done.done():
                done.set_result(None)
        self._event(reg.IMAGE_EVENT_TYPE_PULL_FINISHED, ref)

    async def ensure(
        self, ref: image_pb2.ImageRef, policy: int, on_pull: Callable[[], None] | None = None
    ) -> PullOutcome:
        """The image per policy, calling `on_pull` before a pull starts; raises
        IMAGE_NOT_FOUND or IMAGE_PULL_FAILED."""
        local = await self.runtime.inspect_image(ref.canonical)
        if not needs_pull(local, ref, policy):
            if local is None:
                raise image_not_found(ref)
            return PullOutcome(local, pulled=False)
        if on_pull is not None:
            on_pull()
        async for _ in self.pull(ref):
            pass
        pulled = await self.runtime.inspect_image(ref.canonical)
        if pulled is None:
            raise image_not_found(ref)
        return PullOutcome(pulled, pulled=True)

    async def installed(self) -> list[agent_pb2.InstalledImage]:
        images = []
        for info in await self.runtime.list_images():
            for name in info.tags or [info.ref]:
                image = agent_pb2.InstalledImage(
                    image=image_pb2.ImageRef(
                        canonical=name,
                        architecture=info.architecture,
                        digest=info.digest,
                        is_local=info.is_local,
                    ),
                    size_bytes=info.size_bytes,
                    labels=info.labels,
                )
                if info.created_at:
                    image.created_at.FromDatetime(info.created_at)
                images.append(image)
        return images

    async def purge(self, refs: list[str], force: bool) -> list[tuple[str, BaiError | None]]:
        results: list[tuple[str, BaiError | None]] = []
        for ref in refs:
            try:
                await self.runtime.remove_image(ref, force)
            except ImageMissing:
                results.append((ref, None))
            except RuntimeUnavailable:
                raise
            except RuntimeFailure as exc:
                results.append((ref, FailedPrecondition(str(exc), reason="IN_USE")))
            else:
                results.append((ref, None))
                event = reg.ImageEvent(
                    type=reg.IMAGE_EVENT_TYPE_REMOVED,
                    time=timestamp(),
                    image=image_pb2.ImageRef(canonical=ref),
                )
                self.outbox.image_event(event)
        return results
