"""Execute through the real runner (started by the fake runtime), logs, stats and files."""

from __future__ import annotations

import asyncio
import os
from datetime import UTC, datetime
from typing import Any

import grpc
import pytest
from google.protobuf.duration_pb2 import Duration

from bai.agent.main import RunningAgent
from bai.agent.runtime.base import LogLine
from bai.api.agent.v1 import agent_pb2
from bai.api.common.v1 import execution_pb2 as ex
from bai.api.common.v1 import storage_pb2
from bai.api.manager.v1 import agent_registry_pb2 as reg
from tests.agent.core.helpers import KS, create_request, eventually, kernel_config, wait_status
from tests.rpc_errors import reason_of


async def running_kernel(agent: RunningAgent, stub: Any) -> str:
    config = kernel_config()
    await stub.CreateKernels(create_request(config))
    await wait_status(agent, config.kernel_id, KS.KERNEL_STATUS_RUNNING)
    return config.kernel_id


def start(
    kernel_id: str, code: str, mode: ex.ExecutionMode.ValueType = ex.EXECUTION_MODE_QUERY
) -> agent_pb2.ExecuteRequest:
    return agent_pb2.ExecuteRequest(
        kernel_id=kernel_id, start=ex.ExecutionSpec(mode=mode, code=code)
    )


async def read_all(call: Any) -> list[agent_pb2.ExecuteResponse]:
    replies = []
    while (reply := await call.read()) is not grpc.aio.EOF:
        replies.append(reply)
    return replies


def output_text(replies: list[agent_pb2.ExecuteResponse]) -> str:
    return b"".join(r.output.data for r in replies if r.WhichOneof("payload") == "output").decode()


async def test_execute_query_and_batch(agent: RunningAgent, stub: Any) -> None:
    kernel_id = await running_kernel(agent, stub)
    replies = [r async for r in stub.Execute(iter([start(kernel_id, "x = 20\nprint(x + 1)")]))]
    assert replies[0].started.kernel_id == kernel_id
    assert output_text(replies) == "21\n"
    assert replies[-1].result.status == ex.EXECUTION_STATUS_FINISHED
    assert replies[-1].result.exit_code == 0
    # The namespace persists between runs.
    again = [r async for r in stub.Execute(iter([start(kernel_id, "print(x * 2)")]))]
    assert output_text(again) == "40\n"
    call = stub.Execute()
    await call.write(start(kernel_id, "echo out; echo err >&2; exit 4", ex.EXECUTION_MODE_BATCH))
    batch = [r async for r in call]
    outputs = [
        (r.output.stream, r.output.data) for r in batch if r.WhichOneof("payload") == "output"
    ]
    assert (ex.OUTPUT_STREAM_STDOUT, b"out\n") in outputs
    assert (ex.OUTPUT_STREAM_STDERR, b"err\n") in outputs
    seqs = [r.output.seq for r in batch if r.WhichOneof("payload") == "output"]
    assert seqs == sorted(seqs)
    assert batch[-1].result.exit_code == 4
    kinds = [
        reg.ExecutionEventType.Name(e.execution_event.type)
        for e in agent.ctx.outbox.unacked()
        if e.WhichOneof("payload") == "execution_event"
    ]
    assert kinds == ["EXECUTION_EVENT_TYPE_STARTED", "EXECUTION_EVENT_TYPE_FINISHED"] * 3


async def test_execute_stdin_round_trip(agent: RunningAgent, stub: Any) -> None:
    kernel_id = await running_kernel(agent, stub)
    call = stub.Execute()
    await call.write(start(kernel_id, "name = input('who? ')\nprint('hi', name)"))
    replies = []
    async for reply in call:
        replies.append(reply)
        if reply.WhichOneof("payload") == "waiting_input":
            assert reply.waiting_input.prompt == "who? "
            await call.write(agent_pb2.ExecuteRequest(stdin=ex.ExecutionInput(data=b"bai\n")))
    assert "hi bai" in output_text(replies)
    assert replies[-1].result.status == ex.EXECUTION_STATUS_FINISHED


async def test_second_run_is_refused_and_cancel_interrupts(agent: RunningAgent, stub: Any) -> None:
    kernel_id = await running_kernel(agent, stub)
    busy = stub.Execute()
    await busy.write(start(kernel_id, "import time\nwhile True: time.sleep(0.05)"))
    first = await busy.read()
    assert first.WhichOneof("payload") == "started"
    with pytest.raises(grpc.aio.AioRpcError) as info:
        async for _ in stub.Execute(iter([start(kernel_id, "print(1)")])):
            pass
    assert reason_of(info.value) == "RUN_IN_PROGRESS"
    busy.cancel()
    await eventually(lambda: kernel_id not in agent.km.active_runs, "the cancelled run ends")
    # The runner is free again: the cancelled run was interrupted.
    replies = await eventually(
        lambda: _try_run(stub, kernel_id), "a new run is accepted after the cancel"
    )
    assert output_text(replies) == "1\n"


async def _try_run(stub: Any, kernel_id: str) -> list[agent_pb2.ExecuteResponse] | None:
    try:
        return [r async for r in stub.Execute(iter([start(kernel_id, "print(1)")]))]
    except grpc.aio.AioRpcError as exc:
        if reason_of(exc) == "RUN_IN_PROGRESS":
            return None
        raise


async def test_interrupt_kernel_stops_the_run(agent: RunningAgent, stub: Any) -> None:
    kernel_id = await running_kernel(agent, stub)
    call = stub.Execute()
    await call.write(start(kernel_id, "import time\nwhile True: time.sleep(0.05)"))
    assert (await call.read()).WhichOneof("payload") == "started"
    await stub.InterruptKernel(agent_pb2.InterruptKernelRequest(kernel_id=kernel_id))
    replies = await read_all(call)
    assert replies[-1].result.status == ex.EXECUTION_STATUS_INTERRUPTED


async def test_execute_errors_before_started(agent: RunningAgent, stub: Any) -> None:
    with pytest.raises(grpc.aio.AioRpcError) as info:
        async for _ in stub.Execute(iter([start("00000000-0000-0000-0000-000000000000", "1")])):
            pass
    assert reason_of(info.value) == "NOT_FOUND"
    stdin_first = agent_pb2.ExecuteRequest(kernel_id="x", stdin=ex.ExecutionInput(data=b""))
    with pytest.raises(grpc.aio.AioRpcError) as info:
        async for _ in stub.Execute(iter([stdin_first])):
            pass
    assert reason_of(info.value) == "STREAM_OUT_OF_ORDER"


async def test_logs_and_stats(agent: RunningAgent, stub: Any) -> None:
    kernel_id = await running_kernel(agent, stub)
    sandbox = agent.km.records[kernel_id].sandbox_id
    runtime: Any = agent.ctx.runtime
    now = datetime.now(UTC)
    runtime.sandboxes[sandbox].logs[:] = [
        LogLine("stdout", now, b"one\n"),
        LogLine("stderr", now, b"two\n"),
        LogLine("stdout", now, b"three\n"),
    ]
    tail = agent_pb2.StreamLogsRequest(kernel_id=kernel_id, tail=2)
    entries = [r.entry async for r in stub.StreamLogs(tail)]
    assert [(e.stream, e.data) for e in entries] == [
        (ex.OUTPUT_STREAM_STDERR, b"two\n"),
        (ex.OUTPUT_STREAM_STDOUT, b"three\n"),
    ]
    stream = stub.WatchStats(
        agent_pb2.WatchStatsRequest(
            kernel_ids=[kernel_id], interval=Duration(seconds=1), include_node=True
        )
    )
    first = await stream.read()
    (stats,) = first.kernels
    assert stats.kernel_id == kernel_id
    assert stats.mem_used_bytes > 0
    assert first.node.mem_total_bytes > 0
    stream.cancel()
    with pytest.raises(grpc.aio.AioRpcError) as info:
        async for _ in stub.WatchStats(agent_pb2.WatchStatsRequest(interval=Duration(nanos=5))):
            pass
    assert reason_of(info.value) == "INVALID_FIELD"


async def test_files_upload_list_download_and_containment(agent: RunningAgent, stub: Any) -> None:
    kernel_id = await running_kernel(agent, stub)
    data = os.urandom(3 * 1024 * 1024 + 17)
    header = agent_pb2.UploadFileHeader(kernel_id=kernel_id, path="sub/data.bin", size=len(data))
    chunks = [data[i : i + 1024 * 1024] for i in range(0, len(data), 1024 * 1024)]
    requests = [agent_pb2.UploadFileRequest(header=header)] + [
        agent_pb2.UploadFileRequest(chunk=c) for c in chunks
    ]
    uploaded = await stub.UploadFile(iter(requests))
    assert (uploaded.path, uploaded.size) == ("sub/data.bin", len(data))
    listing = await stub.ListFiles(agent_pb2.ListFilesRequest(kernel_id=kernel_id, path="sub"))
    (entry,) = listing.entries
    assert (entry.name, entry.path, entry.size) == ("data.bin", "sub/data.bin", len(data))
    assert entry.type == storage_pb2.FILE_TYPE_FILE
    parts = [
        r
        async for r in stub.DownloadFile(
            agent_pb2.DownloadFileRequest(
                kernel_id=kernel_id, path="/home/work/sub/data.bin", offset=5
            )
        )
    ]
    assert parts[0].size == len(data)
    assert b"".join(p.chunk for p in parts) == data[5:]
    scratch = agent.ctx.scratch_dir(kernel_id)
    await asyncio.to_thread(os.symlink, "/etc", scratch / "escape")
    for path in ("../outside", "escape/passwd", "/etc/passwd"):
        with pytest.raises(grpc.aio.AioRpcError) as info:
            await stub.ListFiles(agent_pb2.ListFilesRequest(kernel_id=kernel_id, path=path))
        assert reason_of(info.value) == "INVALID_FIELD", path
    with pytest.raises(grpc.aio.AioRpcError) as info:
        await stub.ListFiles(agent_pb2.ListFilesRequest(kernel_id=kernel_id, path="sub/data.bin"))
    assert reason_of(info.value) == "PATH_TYPE_MISMATCH"
    under_file = agent_pb2.UploadFileHeader(kernel_id=kernel_id, path="sub/data.bin/x", size=0)
    with pytest.raises(grpc.aio.AioRpcError) as info:
        await stub.UploadFile(iter([agent_pb2.UploadFileRequest(header=under_file)]))
    assert reason_of(info.value) == "PATH_TYPE_MISMATCH"
    short = agent_pb2.UploadFileHeader(kernel_id=kernel_id, path="x", size=10)
    with pytest.raises(grpc.aio.AioRpcError) as info:
        await stub.UploadFile(
            iter(
                [
                    agent_pb2.UploadFileRequest(header=short),
                    agent_pb2.UploadFileRequest(chunk=b"abc"),
                ]
            )
        )
    assert reason_of(info.value) == "INVALID_FIELD"
    assert not (scratch / "x").exists()
    with pytest.raises(grpc.aio.AioRpcError) as info:
        await stub.UploadFile(iter([agent_pb2.UploadFileRequest(chunk=b"abc")]))
    assert reason_of(info.value) == "STREAM_OUT_OF_ORDER"
