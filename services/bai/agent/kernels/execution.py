"""Execute: relay one run between the caller's stream and the kernel's runner.

The caller's first message starts the run; later ones carry stdin and
interrupts, and the end of its stream closes stdin. The runner's output comes
back in order with its seq, then exactly one result. If the caller goes away
the run is interrupted (closing the handle before the result does that).
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import AsyncIterator
from contextlib import suppress

from bai.agent.kernels.lifecycle import KernelManager
from bai.agent.runner.client import (
    RunHandle,
    RunnerBusy,
    RunnerUnavailable,
    RunOutput,
    RunResult,
    RunSpec,
    RunWaitingInput,
)
from bai.api.agent.v1 import agent_pb2
from bai.api.common.v1 import execution_pb2 as ex
from bai.api.manager.v1 import agent_registry_pb2 as reg
from bai.common.errors import FailedPrecondition, InvalidArgument, Unavailable

log = logging.getLogger(__name__)

_STATUS = {
    "finished": ex.EXECUTION_STATUS_FINISHED,
    "timed_out": ex.EXECUTION_STATUS_TIMED_OUT,
    "interrupted": ex.EXECUTION_STATUS_INTERRUPTED,
    "failed": ex.EXECUTION_STATUS_FAILED,
}
_EVENT = {
    "finished": reg.EXECUTION_EVENT_TYPE_FINISHED,
    "timed_out": reg.EXECUTION_EVENT_TYPE_TIMEOUT,
    "interrupted": reg.EXECUTION_EVENT_TYPE_CANCELLED,
    "failed": reg.EXECUTION_EVENT_TYPE_FINISHED,
}
_STREAM = {"stdout": ex.OUTPUT_STREAM_STDOUT, "stderr": ex.OUTPUT_STREAM_STDERR}


def run_spec(spec: ex.ExecutionSpec) -> RunSpec:
    if spec.mode == ex.EXECUTION_MODE_BATCH and not spec.code.strip():
        raise InvalidArgument.field("start.code", "a batch run needs a command line")
    timeout = spec.timeout.ToTimedelta().total_seconds() if spec.HasField("timeout") else 0
    if timeout < 0:
        raise InvalidArgument.field("start.timeout", "must not be negative")
    return RunSpec(
        mode="batch" if spec.mode == ex.EXECUTION_MODE_BATCH else "query",
        code=spec.code,
        build_command=spec.build_command,
        timeout=timeout or None,
        environ=dict(spec.environ),
    )


def run_in_progress(run_id: str) -> FailedPrecondition:
    return FailedPrecondition(
        "the kernel already runs code", reason="RUN_IN_PROGRESS", metadata={"run_id": run_id}
    )


async def start(km: KernelManager, first: agent_pb2.ExecuteRequest) -> RunHandle:
    """Validate the first message and start the run; errors come before `started`."""
    if first.WhichOneof("payload") != "start":
        raise FailedPrecondition("the first message must carry start", reason="STREAM_OUT_OF_ORDER")
    if not first.kernel_id:
        raise InvalidArgument.field("kernel_id", "is required")
    spec = run_spec(first.start)
    km.require_running(first.kernel_id)
    busy = km.active_runs.get(first.kernel_id)
    if busy is not None:
        raise run_in_progress(busy.run_id)
    client = km.runner.connect(km.socket_path(first.kernel_id))
    try:
        handle = await client.start_run(spec)
    except RunnerBusy as exc:
        raise run_in_progress("") from exc
    except RunnerUnavailable as exc:
        raise Unavailable(f"the kernel's runner is unreachable: {exc}") from exc
    km.active_runs[first.kernel_id] = handle
    return handle


def _execution_event(
    record_session: str, kernel_id: str, run_id: str, kind: int
) -> reg.ExecutionEvent:
    event = reg.ExecutionEvent(
        kernel_id=kernel_id,
        session_id=record_session,
        run_id=run_id,
        type=kind,  # type: ignore[arg-type]
    )
    event.time.GetCurrentTime()
    return event


async def _pump_input(handle: RunHandle, requests: AsyncIterator[agent_pb2.ExecuteRequest]) -> None:
    """The caller's stdin and interrupts to the run; the end of its stream is the end of
    stdin (the runner drops it if the run is already over)."""
    stdin_closed = False
    async for request in requests:
        kind = request.WhichOneof("payload")
        if kind == "stdin":
            stdin_closed = stdin_closed or request.stdin.eof
            await handle.send_stdin(request.stdin.data, request.stdin.eof)
        elif kind == "interrupt":
            await handle.interrupt()
    if not stdin_closed:
        await handle.send_stdin(b"", eof=True)


async def relay(
    km: KernelManager,
    first: agent_pb2.ExecuteRequest,
    requests: AsyncIterator[agent_pb2.ExecuteRequest],
) -> AsyncIterator[agent_pb2.ExecuteResponse]:
    handle = await start(km, first)
    kernel_id = first.kernel_id
    session_id = km.get(kernel_id).session_id
    outbox = km.ctx.outbox
    outbox.execution_event(
        _execution_event(session_id, kernel_id, handle.run_id, reg.EXECUTION_EVENT_TYPE_STARTED)
    )
    pump = asyncio.create_task(_pump_input(handle, requests))
    result = ex.ExecutionResult(run_id=handle.run_id, status=ex.EXECUTION_STATUS_FAILED)
    status = "failed"
    reported = False
    try:
        yield agent_pb2.ExecuteResponse(
            started=ex.ExecutionStarted(run_id=handle.run_id, kernel_id=kernel_id)
        )
        try:
            async for event in handle.events():
                if isinstance(event, RunOutput):
                    output = ex.ExecutionOutput(
                        stream=_STREAM[event.stream], data=event.data, seq=event.seq
                    )
                    yield agent_pb2.ExecuteResponse(output=output)
                elif isinstance(event, RunWaitingInput):
                    waiting = ex.ExecutionWaitingInput(
                        prompt=event.prompt, is_password=event.is_password
                    )
                    yield agent_pb2.ExecuteResponse(waiting_input=waiting)
                elif isinstance(event, RunResult):
                    status = event.status
                    result.status = _STATUS[status]
                    if event.exit_code is not None and status != "failed":
                        result.exit_code = event.exit_code
                    result.files.extend(event.files)
                    result.message = event.message
        except RunnerUnavailable as exc:
            result.message = f"the kernel's runner went away: {exc}"
        finished = _execution_event(session_id, kernel_id, handle.run_id, _EVENT[status])
        if result.HasField("exit_code"):
            finished.exit_code = result.exit_code
        outbox.execution_event(finished)
        reported = True
        yield agent_pb2.ExecuteResponse(result=result)
    finally:
        if not reported:
            # The caller went away mid-run: closing the handle below interrupts it.
            cancelled = reg.EXECUTION_EVENT_TYPE_CANCELLED
            outbox.execution_event(
                _execution_event(session_id, kernel_id, handle.run_id, cancelled)
            )
        pump.cancel()
        with suppress(asyncio.CancelledError, Exception):
            await pump
        if km.active_runs.get(kernel_id) is handle:
            del km.active_runs[kernel_id]
        await handle.close()
