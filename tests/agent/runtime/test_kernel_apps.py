"""Apps in real kernels through AgentService.StartService/ShutdownService: the
intrinsic terminal on both runtimes (HTTP page, then a shell over its WebSocket),
Jupyter in the built image on Docker (/api/status answers 200, a notebook kernel
runs code over its WebSocket), idempotent starts, stops, and precise refusals."""

from __future__ import annotations

import shutil
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import aiohttp
import grpc
import pytest

from bai.agent.main import RunningAgent
from bai.api.agent.v1 import agent_pb2
from bai.api.common.v1 import session_pb2
from tests.agent.core.helpers import KS, create_request, kernel_config, stub_for, wait_status
from tests.agent.runtime.real_agent import RUNTIMES, real_agent, skip_unless_runtime
from tests.rpc_errors import reason_of, violated_fields
from tests.support.app_clients import HTTP_TIMEOUT, jupyter_runs, shell_says


@pytest.fixture
def state_dir() -> Iterator[Path]:
    path = Path(tempfile.mkdtemp(prefix="bai-a-", dir="/tmp"))
    yield path
    shutil.rmtree(path, ignore_errors=True)


async def running_kernel(agent: RunningAgent, image: str) -> str:
    config = kernel_config(image=image)
    channel, stub = stub_for(agent)
    async with channel:
        await stub.CreateKernels(create_request(config))
    await wait_status(agent, config.kernel_id, KS.KERNEL_STATUS_RUNNING)
    return config.kernel_id


async def call(agent: RunningAgent, method: str, request: Any) -> Any:
    channel, stub = stub_for(agent)
    async with channel:
        return await getattr(stub, method)(request)


async def start(agent: RunningAgent, kernel_id: str, service: str, **fields: Any) -> Any:
    request = agent_pb2.StartServiceRequest(kernel_id=kernel_id, service=service, **fields)
    return await call(agent, "StartService", request)


async def stop(agent: RunningAgent, kernel_id: str, service: str) -> None:
    request = agent_pb2.ShutdownServiceRequest(kernel_id=kernel_id, service=service)
    await call(agent, "ShutdownService", request)


async def answers(url: str) -> bool:
    try:
        async with aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=5)) as http:
            async with http.get(url) as response:
                await response.read()
                return True
    except (aiohttp.ClientError, TimeoutError):
        return False


@pytest.mark.parametrize("kind", RUNTIMES)
async def test_the_terminal_runs_a_shell_and_stops(
    kind: str, kernel_image: str, state_dir: Path
) -> None:
    skip_unless_runtime(kind)
    async with real_agent(kind, state_dir) as agent:
        kernel_id = await running_kernel(agent, kernel_image)
        app = await start(agent, kernel_id, "ttyd")
        assert (app.container_port, app.protocol) == (7681, session_pb2.APP_PROTOCOL_HTTP)
        assert not app.already_running
        (ttyd,) = [p for p in agent.km.records[kernel_id].service_ports if p.name == "ttyd"]
        assert app.host_port == ttyd.host_ports[0]
        base = f"http://{app.kernel_host}:{app.host_port}"
        async with aiohttp.ClientSession(timeout=HTTP_TIMEOUT) as http:
            async with http.get(f"{base}/") as page:
                assert page.status == 200
                assert "xterm" in await page.text()
        # $((...)) expands in the shell only: the echo of the typed line cannot match.
        seen = await shell_says(base, "echo id=$(id -u) sum=$((6*7))", "sum=42")
        assert "id=1000 sum=42" in seen
        again = await start(agent, kernel_id, "ttyd")
        assert again.already_running and again.host_port == app.host_port
        await stop(agent, kernel_id, "ttyd")
        assert not await answers(f"{base}/")
        await stop(agent, kernel_id, "ttyd")
        restarted = await start(agent, kernel_id, "ttyd")
        assert not restarted.already_running
        assert await answers(f"{base}/")


async def test_jupyter_answers_api_status(kernel_image: str, state_dir: Path) -> None:
    # Docker only, for CI time: the terminal test covers the process runtime's ports.
    skip_unless_runtime("docker")
    async with real_agent("docker", state_dir) as agent:
        kernel_id = await running_kernel(agent, kernel_image)
        names = {p.name for p in agent.km.records[kernel_id].service_ports}
        assert {"jupyter", "jupyterlab", "ttyd"} <= names
        app = await start(agent, kernel_id, "jupyterlab", envs={"APP_MARK": "x"})
        assert app.container_port == 8090
        url = f"http://{app.kernel_host}:{app.host_port}/api/status"
        async with aiohttp.ClientSession(timeout=HTTP_TIMEOUT) as http:
            async with http.get(url) as response:
                assert response.status == 200
                assert "started" in await response.json()
        base = f"http://{app.kernel_host}:{app.host_port}"
        await jupyter_runs(
            base, "import os; print(os.getuid(), os.environ['APP_MARK'])", "1000 x\n"
        )
        assert (await start(agent, kernel_id, "jupyterlab")).already_running
        await stop(agent, kernel_id, "jupyterlab")
        assert not await answers(url)


async def test_refusals_are_precise(kernel_image: str, state_dir: Path) -> None:
    skip_unless_runtime("docker")
    async with real_agent("docker", state_dir) as agent:
        kernel_id = await running_kernel(agent, kernel_image)
        cases = [
            ("StartService", {"kernel_id": kernel_id, "service": "vscode"}, "NOT_FOUND", []),
            ("StartService", {"kernel_id": kernel_id}, "INVALID_FIELD", ["service"]),
            (
                "StartService",
                {"kernel_id": kernel_id, "service": "ttyd", "port": 8080},
                "INVALID_FIELD",
                ["port"],
            ),
            (
                "StartService",
                {"kernel_id": kernel_id, "service": "ttyd", "arguments": {"x": "1"}},
                "INVALID_FIELD",
                ["arguments[x]"],
            ),
            ("StartService", {"kernel_id": "nope", "service": "ttyd"}, "NOT_FOUND", []),
            ("ShutdownService", {"kernel_id": "nope", "service": "ttyd"}, "NOT_FOUND", []),
        ]
        for method, fields, reason, fields_violated in cases:
            request_type = getattr(agent_pb2, f"{method}Request")
            with pytest.raises(grpc.aio.AioRpcError) as refused:
                await call(agent, method, request_type(**fields))
            assert reason_of(refused.value) == reason, (method, fields)
            assert violated_fields(refused.value) == fields_violated
        # Stopping an app that does not run (or that the kernel lacks) succeeds.
        await stop(agent, kernel_id, "jupyter")
        await stop(agent, kernel_id, "vscode")
