"""Relays between a client's stream and the agents' streams (Execute, logs, stats).

The manager authorizes and picks the kernel's agent; bytes flow through
unchanged. A client that goes away cancels the agent call (the `finally`
blocks), so no agent stream outlives its client.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator, Callable, Sequence
from datetime import timedelta
from typing import Any

from google.protobuf.duration_pb2 import Duration
from google.protobuf.timestamp_pb2 import Timestamp

from bai.api.agent.v1 import agent_pb2
from bai.api.common.v1 import execution_pb2
from bai.api.manager.v1 import agent_pb2 as manager_agent_pb2
from bai.api.manager.v1 import session_pb2
from bai.common.errors import BaiError, FailedPrecondition
from bai.manager.agents.pool import AgentClientPool, agent_errors


def _out_of_order(what: str) -> FailedPrecondition:
    return FailedPrecondition(what, reason="STREAM_OUT_OF_ORDER")


async def execute(
    pool: AgentClientPool,
    agent_id: str,
    kernel_id: str,
    spec: execution_pb2.ExecutionSpec,
    later: AsyncIterator[session_pb2.ExecuteRequest],
) -> AsyncIterator[session_pb2.ExecuteResponse]:
    """Relay one run: `spec` first, then the client's stdin and interrupts."""
    stub: Any = await pool.stub(agent_id)
    misuse: list[BaiError] = []

    async def upstream() -> AsyncIterator[agent_pb2.ExecuteRequest]:
        yield agent_pb2.ExecuteRequest(kernel_id=kernel_id, start=spec)
        async for request in later:
            kind = request.WhichOneof("payload")
            if kind == "stdin":
                yield agent_pb2.ExecuteRequest(stdin=request.stdin)
            elif kind == "interrupt":
                yield agent_pb2.ExecuteRequest(interrupt=request.interrupt)
            else:
                misuse.append(_out_of_order("only stdin or interrupt may follow the start"))
                call.cancel()
                return

    call: Any = stub.Execute(upstream(), metadata=pool.metadata(agent_id))
    try:
        with agent_errors(agent_id):
            async for reply in call:
                # Same fields and numbers on both sides: the bytes carry over.
                yield session_pb2.ExecuteResponse.FromString(reply.SerializeToString())
    except BaiError:
        if misuse:
            raise misuse[0] from None
        raise
    except asyncio.CancelledError:
        if misuse:
            raise misuse[0] from None
        raise
    finally:
        call.cancel()


async def stream_logs(
    pool: AgentClientPool, agent_id: str, request: agent_pb2.StreamLogsRequest
) -> AsyncIterator[session_pb2.StreamLogsResponse]:
    stub: Any = await pool.stub(agent_id)
    call: Any = stub.StreamLogs(request, metadata=pool.metadata(agent_id))
    try:
        with agent_errors(agent_id):
            async for reply in call:
                yield session_pb2.StreamLogsResponse(entry=reply.entry)
    finally:
        call.cancel()


async def watch_node_stats(
    pool: AgentClientPool, agent_id: str, interval: timedelta, include_kernels: bool
) -> AsyncIterator[manager_agent_pb2.WatchAgentStatsResponse]:
    """The node's samples (with its kernels' when asked) until the agent's stream ends."""
    stub: Any = await pool.stub(agent_id)
    request = agent_pb2.WatchStatsRequest(
        interval=Duration(seconds=int(interval.total_seconds())), include_node=True
    )
    call: Any = stub.WatchStats(request, metadata=pool.metadata(agent_id))
    try:
        with agent_errors(agent_id):
            async for reply in call:
                yield manager_agent_pb2.WatchAgentStatsResponse(
                    time=reply.time,
                    node=reply.node,
                    kernels=reply.kernels if include_kernels else [],
                )
    finally:
        call.cancel()


# A sample (time, kernel stats), an agent's failure, or None when its stream ended.
_Sample = tuple[Timestamp, list[Any]] | BaiError | None


async def _pump_stats(
    pool: AgentClientPool,
    agent_id: str,
    kernel_ids: Sequence[str],
    interval: timedelta,
    queue: asyncio.Queue[_Sample],
) -> None:
    stub: Any = await pool.stub(agent_id)
    request = agent_pb2.WatchStatsRequest(
        kernel_ids=list(kernel_ids), interval=Duration(seconds=int(interval.total_seconds()))
    )
    call: Any = stub.WatchStats(request, metadata=pool.metadata(agent_id))
    wanted = set(kernel_ids)
    try:
        with agent_errors(agent_id):
            async for reply in call:
                kernels = [k for k in reply.kernels if k.kernel_id in wanted]
                await queue.put((reply.time, kernels))
    except BaiError as exc:
        await queue.put(exc)
    finally:
        call.cancel()
    await queue.put(None)


async def watch_stats(
    pool: AgentClientPool,
    kernels_by_agent: dict[str, list[str]],
    interval: timedelta,
    still_live: Callable[[], Any],
) -> AsyncIterator[session_pb2.WatchStatsResponse]:
    """Samples of the session's kernels from every agent holding one, until
    `still_live()` (awaited after each sample) says the session ended."""
    queue: asyncio.Queue[_Sample] = asyncio.Queue(maxsize=64)
    running = len(kernels_by_agent)
    tasks = [
        asyncio.create_task(_pump_stats(pool, agent, ids, interval, queue))
        for agent, ids in sorted(kernels_by_agent.items())
    ]
    try:
        while True:
            item = await queue.get()
            if item is None:
                running -= 1
                if running == 0:
                    return
                continue
            if isinstance(item, BaiError):
                raise item
            time, kernels = item
            yield session_pb2.WatchStatsResponse(time=time, kernels=kernels)
            if not await still_live():
                return
    finally:
        for task in tasks:
            task.cancel()
        for task in tasks:
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await task
