"""A call's text metadata, and the shared secret service-to-service calls carry in it.

Agents, the storage proxy and the coordinator accept calls from the manager
(and the manager accepts agents' registry streams) when the caller shows the
secret the stack distributes. An empty expected secret means "not enforced"
(development).
"""

from __future__ import annotations

import hmac
from collections.abc import Mapping
from typing import Any

import grpc

from bai.common.errors import Unauthenticated

INTERNAL_TOKEN_HEADER = "x-bai-internal-token"


def text_metadata(context: grpc.aio.ServicerContext[Any, Any]) -> dict[str, str]:
    """The call's metadata as a dict, binary ("-bin") values left out."""
    return {k: v for k, v in context.invocation_metadata() or () if isinstance(v, str)}


def check_shared_secret(
    expected: str, metadata: Mapping[str, str], header: str = INTERNAL_TOKEN_HEADER
) -> None:
    """Unauthenticated (CREDENTIALS_MISSING or TOKEN_INVALID) unless `header` holds
    `expected`; compared in constant time."""
    if not expected:
        return
    token = metadata.get(header, "")
    if not token:
        raise Unauthenticated(f"{header} is missing", reason="CREDENTIALS_MISSING")
    if not hmac.compare_digest(token.encode(), expected.encode()):
        raise Unauthenticated(f"{header} is wrong", reason="TOKEN_INVALID")
