"""The edge of every AgentService RPC: internal token, agent id, error mapping, metrics.

Handlers are written as `async def Method(self, request, context)` and wrapped
with `unary` (a reply) or `streaming` (an async generator of replies); the
wrappers check the caller first and turn exceptions into google.rpc.Status
with `bai.common.grpc_errors`.
"""

from __future__ import annotations

import functools
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Any, Protocol, TypeVar

import grpc

from bai.agent.config import AgentConfig
from bai.agent.runtime.base import RuntimeFailure
from bai.common.errors import FailedPrecondition, Unavailable
from bai.common.grpc_errors import to_grpc_status
from bai.common.metrics import rpc_observer
from bai.common.shared_secret import check_shared_secret, text_metadata

AGENT_HEADER = "x-bai-agent-id"
SERVICE = "bai.api.agent.v1.AgentService"

observe_rpc = rpc_observer("agent")

Req = TypeVar("Req")
Resp = TypeVar("Resp")
Context = grpc.aio.ServicerContext[Any, Any]


class HasConfig(Protocol):
    config: AgentConfig


def check_caller(config: AgentConfig, metadata: dict[str, str]) -> None:
    """The manager's internal token (when one is configured) and this agent's id."""
    check_shared_secret(config.internal_token, metadata)
    addressed = metadata.get(AGENT_HEADER, "")
    if addressed and addressed != config.agent_id:
        raise FailedPrecondition(
            f"this is agent {config.agent_id}, not {addressed}",
            reason="AGENT_MISMATCH",
            metadata={"expected": addressed, "actual": config.agent_id},
        )


def _domain_error(exc: BaseException) -> BaseException:
    if isinstance(exc, RuntimeFailure):
        return Unavailable(f"container runtime: {exc}")
    return exc


def unary(
    fn: Callable[[Any, Req, Context], Awaitable[Resp]],
) -> Callable[..., Awaitable[Resp]]:
    @functools.wraps(fn)
    async def handler(self: HasConfig, request: Req, context: Context) -> Resp:
        method = f"/{SERVICE}/{fn.__name__}"
        started = time.perf_counter()
        try:
            check_caller(self.config, text_metadata(context))
            reply = await fn(self, request, context)
        except Exception as exc:
            status = to_grpc_status(_domain_error(exc))
            observe_rpc(method, status.code.name, time.perf_counter() - started)
            await context.abort_with_status(status)
            raise AssertionError("unreachable") from exc
        observe_rpc(method, "OK", time.perf_counter() - started)
        return reply

    return handler


def streaming(
    fn: Callable[[Any, Req, Context], AsyncIterator[Resp]],
) -> Callable[..., AsyncIterator[Resp]]:
    @functools.wraps(fn)
    async def handler(self: HasConfig, request: Req, context: Context) -> AsyncIterator[Resp]:
        method = f"/{SERVICE}/{fn.__name__}"
        started = time.perf_counter()
        try:
            check_caller(self.config, text_metadata(context))
            async for reply in fn(self, request, context):
                yield reply
        except Exception as exc:
            status = to_grpc_status(_domain_error(exc))
            observe_rpc(method, status.code.name, time.perf_counter() - started)
            await context.abort_with_status(status)
            return
        observe_rpc(method, "OK", time.perf_counter() - started)

    return handler
