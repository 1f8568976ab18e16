"""End to end: gRPC, grpc-web, REST/JSON, CORS and reflection through Envoy to a fake manager."""

from __future__ import annotations

import json
import struct
import subprocess
import sys
from pathlib import Path

import grpc
import pytest
from grpc_health.v1 import health_pb2, health_pb2_grpc

from bai.api.manager.v1 import auth_pb2, auth_pb2_grpc

from .conftest import Gateway

pytestmark = pytest.mark.slow

GRPCURL = Path(sys.executable).parent / "grpcurl"
WHOAMI = "/bai.api.manager.v1.AuthService/WhoAmI"
ORIGIN = "http://ui.example.test"


def test_native_grpc(gateway: Gateway) -> None:
    with grpc.insecure_channel(f"127.0.0.1:{gateway.port}") as ch:
        stub = auth_pb2_grpc.AuthServiceStub(ch)
        reply = stub.WhoAmI(
            auth_pb2.WhoAmIRequest(), metadata=(("authorization", "Bearer t"),), timeout=5
        )
        assert reply.username == "alice"
        assert reply.access_key == "authorization-present"
        assert stub.WhoAmI(auth_pb2.WhoAmIRequest(), timeout=5).access_key == ""
        with pytest.raises(grpc.RpcError) as err:
            stub.Login(auth_pb2.LoginRequest(username="alice", password="bad"), timeout=5)
        assert err.value.code() == grpc.StatusCode.UNAUTHENTICATED
        health = health_pb2_grpc.HealthStub(ch).Check(health_pb2.HealthCheckRequest(), timeout=5)
        assert health.status == health_pb2.HealthCheckResponse.SERVING


def _grpc_web_frames(body: bytes) -> list[tuple[int, bytes]]:
    frames = []
    while body:
        flag, length = struct.unpack(">BI", body[:5])
        frames.append((flag, body[5 : 5 + length]))
        body = body[5 + length :]
    return frames


def test_grpc_web(gateway: Gateway) -> None:
    msg = auth_pb2.WhoAmIRequest().SerializeToString()
    status, headers, body = gateway.request(
        "POST",
        WHOAMI,
        body=struct.pack(">BI", 0, len(msg)) + msg,
        headers={
            "content-type": "application/grpc-web+proto",
            "x-grpc-web": "1",
            "authorization": "Bearer t",
            "origin": ORIGIN,
        },
    )
    assert status == 200
    assert headers["content-type"].startswith("application/grpc-web")
    assert headers["access-control-allow-origin"] == ORIGIN
    assert "grpc-status" in headers["access-control-expose-headers"]
    frames = _grpc_web_frames(body)
    assert [flag for flag, _ in frames] == [0x00, 0x80]
    reply = auth_pb2.WhoAmIResponse.FromString(frames[0][1])
    assert reply.username == "alice"
    assert reply.access_key == "authorization-present"
    trailers = dict(
        line.split(":", 1) for line in frames[1][1].decode().strip().split("\r\n") if line
    )
    assert trailers["grpc-status"].strip() == "0"


def test_cors_preflight(gateway: Gateway) -> None:
    status, headers, _ = gateway.request(
        "OPTIONS",
        WHOAMI,
        headers={
            "origin": ORIGIN,
            "access-control-request-method": "POST",
            "access-control-request-headers": "x-grpc-web,content-type,authorization",
        },
    )
    assert status == 200
    assert headers["access-control-allow-origin"] == ORIGIN
    allowed = {h.strip() for h in headers["access-control-allow-headers"].split(",")}
    assert {"x-grpc-web", "content-type", "authorization", "x-bai-signature"} <= allowed
    assert "POST" in headers["access-control-allow-methods"]


def test_rest_whoami(gateway: Gateway) -> None:
    status, headers, body = gateway.request(
        "GET", "/v1/auth/whoami", headers={"authorization": "Bearer t"}
    )
    assert status == 200, body
    assert headers["content-type"].startswith("application/json")
    data = json.loads(body)
    assert data["username"] == "alice"
    assert data["role"] == "USER_ROLE_USER"
    assert data["accessKey"] == "authorization-present"
    assert data["projectIds"] == ["p-1"]


def test_rest_login(gateway: Gateway) -> None:
    status, _, body = gateway.request(
        "POST",
        "/v1/auth/login",
        body=json.dumps({"username": "alice", "password": "secret"}).encode(),
        headers={"content-type": "application/json"},
    )
    assert status == 200, body
    data = json.loads(body)
    assert data["token"] == "token-for-alice"
    assert data["identity"]["username"] == "alice"
    # always_print_primitive_fields: empty strings are present.
    assert data["identity"]["accessKey"] == ""


def test_rest_error_maps_to_http_status(gateway: Gateway) -> None:
    status, headers, body = gateway.request(
        "POST",
        "/v1/auth/login",
        body=json.dumps({"username": "alice", "password": "bad"}).encode(),
        headers={"content-type": "application/json"},
    )
    assert status == 401, body
    assert headers["content-type"].startswith("application/json")
    data = json.loads(body)
    assert data["code"] == 16
    assert data["message"] == "login failed"
    assert data["details"][0]["@type"] == "type.googleapis.com/google.rpc.ErrorInfo"
    assert data["details"][0]["reason"] == "LOGIN_FAILED"


def test_rest_unknown_path_rejected(gateway: Gateway) -> None:
    status, _, body = gateway.request("GET", "/v1/nope")
    assert status == 404, body
    status, _, body = gateway.request("POST", "/v1/auth/whoami", body=b"{}")
    assert status == 404, body


def test_rest_unknown_query_parameter_rejected(gateway: Gateway) -> None:
    status, _, body = gateway.request("GET", "/v1/auth/whoami?bogus=1")
    assert status == 400, body


def test_rest_server_stream_is_ndjson(gateway: Gateway) -> None:
    status, _, body = gateway.request("GET", "/v1/test/count?n=3")
    assert status == 200, body
    lines = body.decode().strip().split("\n")
    assert [json.loads(line) for line in lines] == [{"i": 1}, {"i": 2}, {"i": 3}]


def _grpcurl(*args: str) -> str:
    proc = subprocess.run(
        [str(GRPCURL), "-plaintext", *args], capture_output=True, text=True, timeout=30
    )
    assert proc.returncode == 0, proc.stderr
    return proc.stdout


def test_grpcurl_reflection_and_health(gateway: Gateway) -> None:
    addr = f"127.0.0.1:{gateway.port}"
    services = _grpcurl(addr, "list").split()
    assert "bai.api.manager.v1.AuthService" in services
    assert "grpc.health.v1.Health" in services
    out = _grpcurl(addr, "grpc.health.v1.Health/Check")
    assert json.loads(out)["status"] == "SERVING"
    out = _grpcurl("-H", "authorization: Bearer t", addr, "bai.api.manager.v1.AuthService/WhoAmI")
    assert json.loads(out)["username"] == "alice"


def test_static_ui(gateway: Gateway) -> None:
    status, headers, body = gateway.request("GET", "/ui/")
    assert status == 200
    assert headers["content-type"].startswith("text/html")
    assert body == (gateway.web_root / "index.html").read_bytes()
    status, headers, body = gateway.request("GET", "/ui/assets/app.js")
    assert status == 200
    assert "javascript" in headers["content-type"]
    assert body == (gateway.web_root / "assets" / "app.js").read_bytes()
    # Client-side routes of the single-page app get index.html.
    status, _, body = gateway.request("GET", "/ui/sessions/abc")
    assert status == 200
    assert body.startswith(b"<!doctype html>")
    status, headers, _ = gateway.request("GET", "/")
    assert status == 301 and headers["location"].endswith("/ui/")
    status, headers, _ = gateway.request("GET", "/ui")
    assert status in (301, 302)
    assert headers["location"].endswith("/ui/")
