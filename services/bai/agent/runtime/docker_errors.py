"""aiodocker's and aiohttp's failures as the runtime errors of `base.py`."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager

import aiohttp
from aiodocker.exceptions import DockerError

from bai.agent.runtime.base import RuntimeFailure, RuntimeUnavailable

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
