"""StartService edges through the agent and the real runner (sandboxes are host
processes): an app the image declares but nothing can start, and a preopen port,
which is the user's own server."""

from __future__ import annotations

from dataclasses import replace
from typing import Any

import grpc
import pytest

from bai.agent.main import RunningAgent
from bai.api.agent.v1 import agent_pb2
from bai.api.common.v1 import session_pb2
from tests.agent.core.fake_runtime import IMAGE, HostProcessRuntime
from tests.agent.core.helpers import KS, create_request, kernel_config, wait_status
from tests.rpc_errors import reason_of, status_of

APP_IMAGE = "bai.local/test/undefined-app:1"


async def test_an_app_without_a_definition_fails_to_start(
    agent: RunningAgent, runtime: HostProcessRuntime, stub: Any
) -> None:
    labels = {"ai.backend.kernelspec": "1", "ai.backend.service-ports": "mystery:http:9999"}
    runtime.images[APP_IMAGE] = replace(
        runtime.images[IMAGE], ref=APP_IMAGE, tags=[APP_IMAGE], labels=labels
    )
    config = kernel_config(image=APP_IMAGE)
    await stub.CreateKernels(create_request(config))
    await wait_status(agent, config.kernel_id, KS.KERNEL_STATUS_RUNNING)
    with pytest.raises(grpc.aio.AioRpcError) as failed:
        await stub.StartService(
            agent_pb2.StartServiceRequest(kernel_id=config.kernel_id, service="mystery")
        )
    assert failed.value.code() == grpc.StatusCode.FAILED_PRECONDITION
    assert reason_of(failed.value) == "SERVICE_START_FAILED"
    assert "no definition for the app 'mystery'" in (failed.value.details() or "")
    assert status_of(failed.value).details


async def test_a_preopen_port_is_only_located(agent: RunningAgent, stub: Any) -> None:
    config = kernel_config(preopen_ports=[9998])
    await stub.CreateKernels(create_request(config))
    await wait_status(agent, config.kernel_id, KS.KERNEL_STATUS_RUNNING)
    reply = await stub.StartService(
        agent_pb2.StartServiceRequest(kernel_id=config.kernel_id, service="9998")
    )
    (preopen,) = [p for p in agent.km.records[config.kernel_id].service_ports if p.name == "9998"]
    assert (reply.container_port, reply.host_port) == (9998, preopen.host_ports[0])
    assert reply.protocol == session_pb2.APP_PROTOCOL_PREOPEN
    assert not reply.already_running
    await stub.ShutdownService(
        agent_pb2.ShutdownServiceRequest(kernel_id=config.kernel_id, service="9998")
    )
