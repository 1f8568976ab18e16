"""Running code in a session over the bidi ``SessionService.Execute`` stream.

    from bai.client import Client, execute

    with Client.from_env() as client, execute(client, session_id, "input('name? ')") as run:
        for response in run:
            if response.HasField("waiting_input"):
                run.send_stdin("world\\n")
            elif response.HasField("output"):
                print(response.output.data.decode(), end="")
        print(run.exit_code)

``execute`` returns an :class:`Execution` for a ``Client`` and an
:class:`AsyncExecution` (``async for``/``async with``) for an ``AsyncClient``.
Iterating yields every ``ExecuteResponse`` in order (started, output chunks,
waiting_input prompts, the result). ``send_stdin``, ``close_stdin`` and
``interrupt`` never block: they queue a request that the stream sends next.
Leaving the ``with`` block early cancels the run.
"""

from __future__ import annotations

import asyncio
import queue
from collections.abc import AsyncGenerator, AsyncIterator, Generator, Iterator, Mapping
from datetime import timedelta
from types import TracebackType
from typing import TypeAlias, cast, overload

from bai.api.common.v1 import execution_pb2
from bai.api.manager.v1 import session_pb2
from bai.client._client import AsyncClient, Client
from bai.client._requests import enum_value
from bai.client._transport import Metadata

ExecutionMode: TypeAlias = execution_pb2.ExecutionMode.ValueType


def execution_spec(
    code: str,
    *,
    mode: ExecutionMode | str = execution_pb2.EXECUTION_MODE_QUERY,
    build_command: str = "",
    environ: Mapping[str, str] | None = None,
    exec_timeout: timedelta | float | None = None,
) -> execution_pb2.ExecutionSpec:
    """The ``start`` payload: ``mode`` is an ExecutionMode or "query"/"batch"."""
    number = enum_value(execution_pb2.ExecutionMode.DESCRIPTOR, mode)
    spec = execution_pb2.ExecutionSpec(
        mode=number,  # type: ignore[arg-type]
        code=code,
        build_command=build_command,
        environ=dict(environ or {}),
    )
    if exec_timeout is not None:
        seconds = (
            exec_timeout.total_seconds() if isinstance(exec_timeout, timedelta) else exec_timeout
        )
        spec.timeout.FromTimedelta(timedelta(seconds=seconds))
    return spec


def _stdin_request(data: bytes | str, eof: bool) -> session_pb2.ExecuteRequest:
    raw = data.encode() if isinstance(data, str) else data
    return session_pb2.ExecuteRequest(stdin=execution_pb2.ExecutionInput(data=raw, eof=eof))


_INTERRUPT = session_pb2.ExecuteRequest(interrupt=execution_pb2.ExecutionInterrupt())


class _RunState:
    """What both flavours remember about the responses seen so far."""

    def __init__(self) -> None:
        self.run_id = ""
        self.kernel_id = ""
        self.result: execution_pb2.ExecutionResult | None = None

    def observe(self, response: session_pb2.ExecuteResponse) -> None:
        kind = response.WhichOneof("payload")
        if kind == "started":
            self.run_id, self.kernel_id = response.started.run_id, response.started.kernel_id
        elif kind == "result":
            self.result = response.result

    @property
    def exit_code(self) -> int | None:
        """The program's exit code once the result arrived (None if unknown)."""
        if self.result is None or not self.result.HasField("exit_code"):
            return None
        return self.result.exit_code


class Execution(_RunState):
    """One run on a blocking ``Client``; iterate it for the responses."""

    def __init__(
        self,
        client: Client,
        first: session_pb2.ExecuteRequest,
        *,
        timeout: float | None = None,
        metadata: Metadata = (),
    ) -> None:
        super().__init__()
        self._requests: queue.SimpleQueue[session_pb2.ExecuteRequest | None] = queue.SimpleQueue()
        self._requests.put(first)
        # The transports return generators; closing one cancels the call.
        self._responses = cast(
            Generator[session_pb2.ExecuteResponse, None, None],
            client.sessions.execute(self._request_stream(), timeout=timeout, metadata=metadata),
        )
        self._done = False

    def _request_stream(self) -> Iterator[session_pb2.ExecuteRequest]:
        # Runs in grpc's request thread; None half-closes the stream.
        while (request := self._requests.get()) is not None:
            yield request

    def __iter__(self) -> Iterator[session_pb2.ExecuteResponse]:
        return self

    def __next__(self) -> session_pb2.ExecuteResponse:
        try:
            response = next(self._responses)
        except BaseException:
            self._finish()
            raise
        self.observe(response)
        return response

    def send_stdin(self, data: bytes | str, *, eof: bool = False) -> None:
        """Bytes (str: UTF-8) for the program's stdin; ``eof`` closes stdin after them."""
        self._requests.put(_stdin_request(data, eof))

    def close_stdin(self) -> None:
        self._requests.put(_stdin_request(b"", True))

    def interrupt(self) -> None:
        """Ask the server to interrupt the run (SIGINT); the result still follows."""
        self._requests.put(_INTERRUPT)

    def wait(self) -> execution_pb2.ExecutionResult | None:
        """Read the remaining responses; the result (None if the stream ended without one)."""
        for _ in self:
            pass
        return self.result

    def cancel(self) -> None:
        """Cancel the RPC (the server interrupts the run). Call it from the iterating thread."""
        self._responses.close()
        self._finish()

    def _finish(self) -> None:
        if not self._done:
            self._done = True
            self._requests.put(None)

    def __enter__(self) -> Execution:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.cancel()


class AsyncExecution(_RunState):
    """One run on an ``AsyncClient``; ``async for`` it for the responses."""

    def __init__(
        self,
        client: AsyncClient,
        first: session_pb2.ExecuteRequest,
        *,
        timeout: float | None = None,
        metadata: Metadata = (),
    ) -> None:
        super().__init__()
        self._requests: asyncio.Queue[session_pb2.ExecuteRequest | None] = asyncio.Queue()
        self._requests.put_nowait(first)
        self._responses = cast(
            AsyncGenerator[session_pb2.ExecuteResponse, None],
            client.sessions.execute(self._request_stream(), timeout=timeout, metadata=metadata),
        )
        self._done = False

    async def _request_stream(self) -> AsyncIterator[session_pb2.ExecuteRequest]:
        while (request := await self._requests.get()) is not None:
            yield request

    def __aiter__(self) -> AsyncIterator[session_pb2.ExecuteResponse]:
        return self

    async def __anext__(self) -> session_pb2.ExecuteResponse:
        try:
            response = await anext(self._responses)
        except BaseException:
            self._finish()
            raise
        self.observe(response)
        return response

    def send_stdin(self, data: bytes | str, *, eof: bool = False) -> None:
        """Bytes (str: UTF-8) for the program's stdin; ``eof`` closes stdin after them."""
        self._requests.put_nowait(_stdin_request(data, eof))

    def close_stdin(self) -> None:
        self._requests.put_nowait(_stdin_request(b"", True))

    def interrupt(self) -> None:
        """Ask the server to interrupt the run (SIGINT); the result still follows."""
        self._requests.put_nowait(_INTERRUPT)

    async def wait(self) -> execution_pb2.ExecutionResult | None:
        """Read the remaining responses; the result (None if the stream ended without one)."""
        async for _ in self:
            pass
        return self.result

    async def cancel(self) -> None:
        """Cancel the RPC (the server interrupts the run)."""
        await self._responses.aclose()
        self._finish()

    def _finish(self) -> None:
        if not self._done:
            self._done = True
            self._requests.put_nowait(None)

    async def __aenter__(self) -> AsyncExecution:
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await self.cancel()


@overload
def execute(
    client: Client,
    session_id: str,
    code: str,
    *,
    mode: ExecutionMode | str = ...,
    kernel_id: str = ...,
    build_command: str = ...,
    environ: Mapping[str, str] | None = ...,
    exec_timeout: timedelta | float | None = ...,
    timeout: float | None = ...,
    metadata: Metadata = ...,
) -> Execution: ...


@overload
def execute(
    client: AsyncClient,
    session_id: str,
    code: str,
    *,
    mode: ExecutionMode | str = ...,
    kernel_id: str = ...,
    build_command: str = ...,
    environ: Mapping[str, str] | None = ...,
    exec_timeout: timedelta | float | None = ...,
    timeout: float | None = ...,
    metadata: Metadata = ...,
) -> AsyncExecution: ...


def execute(
    client: Client | AsyncClient,
    session_id: str,
    code: str,
    *,
    mode: ExecutionMode | str = execution_pb2.EXECUTION_MODE_QUERY,
    kernel_id: str = "",
    build_command: str = "",
    environ: Mapping[str, str] | None = None,
    exec_timeout: timedelta | float | None = None,
    timeout: float | None = None,
    metadata: Metadata = (),
) -> Execution | AsyncExecution:
    """Start running ``code`` in the session (its main kernel unless ``kernel_id``).

    ``mode``: "query" (code for the kernel's language runtime) or "batch" (a shell
    command line, after ``build_command``). ``exec_timeout`` bounds the run on the
    server (it then ends TIMED_OUT); ``timeout`` is the RPC deadline in seconds
    (default: none). The stream opens when iteration starts.
    """
    spec = execution_spec(
        code, mode=mode, build_command=build_command, environ=environ, exec_timeout=exec_timeout
    )
    first = session_pb2.ExecuteRequest(session_id=session_id, kernel_id=kernel_id, start=spec)
    if isinstance(client, AsyncClient):
        return AsyncExecution(client, first, timeout=timeout, metadata=metadata)
    return Execution(client, first, timeout=timeout, metadata=metadata)
