"""aiodocker's and aiohttp's failures as the runtime errors of `base.py`, also when
they arrive inside a pull's or push's progress stream."""

from __future__ import annotations

from collections.abc import AsyncIterator, Iterator
from contextlib import contextmanager
from typing import Any

import aiohttp
from aiodocker.exceptions import DockerError

from bai.agent.runtime.base import ImageMissing, PullProgress, RuntimeFailure, RuntimeUnavailable

# aiodocker's status for "could not reach dockerd at all".
CANNOT_CONNECT = 900
NOT_FOUND = 404
NOT_MODIFIED = 304
CONFLICT = 409


@contextmanager
def docker_errors(missing: type[RuntimeFailure], what: str) -> Iterator[None]:
    """Map aiodocker/aiohttp failures: 404 -> `missing`, unreachable -> RuntimeUnavailable."""
    try:
        yield
    except DockerError as exc:
        if exc.status == CANNOT_CONNECT:
            raise RuntimeUnavailable(f"dockerd is unreachable: {exc.message}") from exc
        if exc.status == NOT_FOUND:
            raise missing(f"{what}: {exc.message}") from exc
        raise RuntimeFailure(f"{what}: {exc.message}") from exc
    except (aiohttp.ClientError, OSError) as exc:
        raise RuntimeUnavailable(f"dockerd is unreachable: {exc}") from exc


async def relay_progress(
    events: AsyncIterator[dict[str, Any]], what: str, failure: type[RuntimeFailure]
) -> AsyncIterator[PullProgress]:
    """A pull's or push's progress stream; dockerd reports a refused or unreachable
    registry inside the stream, which becomes `failure` (ImageMissing on a 404,
    RuntimeUnavailable when dockerd itself is unreachable)."""
    try:
        with docker_errors(ImageMissing, what):
            async for event in events:
                detail = event.get("progressDetail") or {}
                yield PullProgress(
                    current_bytes=int(detail.get("current") or 0),
                    total_bytes=int(detail.get("total") or 0),
                    message=str(event.get("status") or ""),
                )
    except (RuntimeFailure, ValueError) as exc:
        if isinstance(exc, RuntimeUnavailable | ImageMissing):
            raise
        raise failure(f"{what}: {exc}") from exc
