"""Fixtures for the gateway tests: a fake manager (grpc.aio) and Envoy in front of it."""

from __future__ import annotations

import asyncio
import http.client
import subprocess
import threading
import time
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import grpc
import pytest
from google.api import annotations_pb2
from google.protobuf import any_pb2, descriptor_pb2, descriptor_pool, duration_pb2, message_factory
from google.rpc import code_pb2, error_details_pb2, status_pb2
from grpc_health.v1 import health, health_pb2, health_pb2_grpc
from grpc_reflection.v1alpha import reflection
from grpc_status import rpc_status

from bai.api.manager.v1 import auth_pb2, auth_pb2_grpc
from bai.gateway import gateway_process_argv, render_gateway_config, services_in_descriptor
from bai.stack.testing import free_ports

REPO = Path(__file__).resolve().parents[2]
DESCRIPTOR = REPO / "gen" / "descriptor" / "bai.binpb"
STREAM_SERVICE = "gwtest.v1.StreamService"


# --- a streaming test service, added to a copy of the committed descriptor set ---


def stream_test_file() -> descriptor_pb2.FileDescriptorProto:
    """gwtest.v1.StreamService.Count(CountRequest{n}) -> stream CountReply{i}.

    REST: GET /v1/test/count?n=N.
    """
    f = descriptor_pb2.FileDescriptorProto(
        name="gwtest/v1/stream.proto",
        package="gwtest.v1",
        syntax="proto3",
        dependency=["google/api/annotations.proto"],
    )
    fd = descriptor_pb2.FieldDescriptorProto
    for msg, field in (("CountRequest", "n"), ("CountReply", "i")):
        m = f.message_type.add(name=msg)
        m.field.add(
            name=field, number=1, type=fd.TYPE_INT32, label=fd.LABEL_OPTIONAL, json_name=field
        )
    svc = f.service.add(name="StreamService")
    method = svc.method.add(
        name="Count",
        input_type=".gwtest.v1.CountRequest",
        output_type=".gwtest.v1.CountReply",
        server_streaming=True,
    )
    method.options.Extensions[annotations_pb2.http].get = "/v1/test/count"
    return f


def topo_sorted(
    files: list[descriptor_pb2.FileDescriptorProto],
) -> list[descriptor_pb2.FileDescriptorProto]:
    """Dependencies before dependents (descriptor pools build files in order)."""
    by_name = {f.name: f for f in files}
    done: dict[str, descriptor_pb2.FileDescriptorProto] = {}

    def visit(f: descriptor_pb2.FileDescriptorProto) -> None:
        if f.name in done:
            return
        for dep in f.dependency:
            if dep in by_name:
                visit(by_name[dep])
        done[f.name] = f

    for f in files:
        visit(f)
    return list(done.values())


def augmented_descriptor(dest: Path) -> tuple[Path, Any, Any]:
    """Committed descriptor set + the stream test file; returns the path and message classes."""
    fds = descriptor_pb2.FileDescriptorSet()
    fds.ParseFromString(DESCRIPTOR.read_bytes())
    # The error detail types must be in the set for convert_grpc_status to
    # turn grpc-status-details-bin into a JSON body.
    present = {f.name for f in fds.file}
    extra = []
    for mod in (any_pb2, duration_pb2, status_pb2, error_details_pb2):
        if mod.DESCRIPTOR.name not in present:
            proto = descriptor_pb2.FileDescriptorProto()
            mod.DESCRIPTOR.CopyToProto(proto)
            extra.append(proto)
    files = topo_sorted([*fds.file, *extra, stream_test_file()])
    fds = descriptor_pb2.FileDescriptorSet(file=files)
    dest.write_bytes(fds.SerializeToString())
    pool = descriptor_pool.DescriptorPool()
    for f in fds.file:
        pool.Add(f)
    req = message_factory.GetMessageClass(pool.FindMessageTypeByName("gwtest.v1.CountRequest"))
    rep = message_factory.GetMessageClass(pool.FindMessageTypeByName("gwtest.v1.CountReply"))
    return dest, req, rep


# --- the fake manager ---


IDENTITY = dict(
    user_id="u-1",
    username="alice",
    email="alice@example.test",
    role=auth_pb2.USER_ROLE_USER,
    domain_name="default",
    project_ids=["p-1"],
)


class FakeAuth(auth_pb2_grpc.AuthServiceServicer):
    async def WhoAmI(
        self, request: auth_pb2.WhoAmIRequest, context: grpc.aio.ServicerContext[Any, Any]
    ) -> auth_pb2.WhoAmIResponse:
        md = {k: v for k, v in context.invocation_metadata() or ()}
        # Echo whether the authorization metadata arrived, in access_key.
        seen = "authorization-present" if "authorization" in md else ""
        return auth_pb2.WhoAmIResponse(**IDENTITY, access_key=seen)  # type: ignore[arg-type]

    async def Login(
        self, request: auth_pb2.LoginRequest, context: grpc.aio.ServicerContext[Any, Any]
    ) -> auth_pb2.LoginResponse:
        if request.password == "bad":
            info = error_details_pb2.ErrorInfo(reason="LOGIN_FAILED", domain="bai")
            st = status_pb2.Status(code=code_pb2.UNAUTHENTICATED, message="login failed")
            st.details.add().Pack(info)
            await context.abort_with_status(rpc_status.to_status(st))
        return auth_pb2.LoginResponse(
            token=f"token-for-{request.username}",
            identity=auth_pb2.WhoAmIResponse(**IDENTITY),  # type: ignore[arg-type]
        )


@dataclass
class FakeManager:
    port: int
    reply_cls: Any
    request_cls: Any


class FakeManagerThread:
    """grpc.aio server on its own event loop in a thread, so tests can block freely."""

    def __init__(self, request_cls: Any, reply_cls: Any) -> None:
        self.loop = asyncio.new_event_loop()
        self.thread = threading.Thread(target=self.loop.run_forever, daemon=True)
        self.server: grpc.aio.Server | None = None
        self.request_cls = request_cls
        self.reply_cls = reply_cls

    def start(self) -> int:
        self.thread.start()
        return asyncio.run_coroutine_threadsafe(self._start(), self.loop).result(10)

    async def _count(self, request: Any, context: Any) -> AsyncIterator[Any]:
        for i in range(1, request.n + 1):
            yield self.reply_cls(i=i)
            await asyncio.sleep(0.05)

    async def _start(self) -> int:
        server = grpc.aio.server()
        auth_pb2_grpc.add_AuthServiceServicer_to_server(FakeAuth(), server)
        handler = grpc.method_handlers_generic_handler(
            STREAM_SERVICE,
            {
                "Count": grpc.unary_stream_rpc_method_handler(
                    self._count,
                    request_deserializer=self.request_cls.FromString,
                    response_serializer=lambda m: m.SerializeToString(),
                )
            },
        )
        server.add_generic_rpc_handlers((handler,))
        health_servicer = health.aio.HealthServicer()
        health_pb2_grpc.add_HealthServicer_to_server(health_servicer, server)
        auth_name = auth_pb2.DESCRIPTOR.services_by_name["AuthService"].full_name
        health_name = health_pb2.DESCRIPTOR.services_by_name["Health"].full_name
        reflection.enable_server_reflection(
            [auth_name, health_name, reflection.SERVICE_NAME], server
        )
        port = server.add_insecure_port("127.0.0.1:0")
        await server.start()
        await health_servicer.set("", health_pb2.HealthCheckResponse.SERVING)
        self.server = server
        return port

    def stop(self) -> None:
        if self.server is not None:
            asyncio.run_coroutine_threadsafe(self.server.stop(0), self.loop).result(10)
        self.loop.call_soon_threadsafe(self.loop.stop)
        self.thread.join(10)
        self.loop.close()


@pytest.fixture(scope="module")
def fake_manager(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[FakeManager, Path]]:
    desc, req, rep = augmented_descriptor(tmp_path_factory.mktemp("desc") / "bai-test.binpb")
    fake = FakeManagerThread(req, rep)
    port = fake.start()
    try:
        yield FakeManager(port, rep, req), desc
    finally:
        fake.stop()


# --- Envoy ---


@dataclass
class Gateway:
    port: int
    admin_port: int
    manager: FakeManager
    log: Path
    web_root: Path

    def request(
        self,
        method: str,
        path: str,
        body: bytes | None = None,
        headers: dict[str, str] | None = None,
    ) -> tuple[int, http.client.HTTPMessage, bytes]:
        conn = http.client.HTTPConnection("127.0.0.1", self.port, timeout=10)
        try:
            conn.request(method, path, body=body, headers=headers or {})
            resp = conn.getresponse()
            return resp.status, resp.headers, resp.read()
        finally:
            conn.close()


def wait_ready(admin_port: int, proc: subprocess.Popen[bytes], log: Path) -> None:
    deadline = time.monotonic() + 20
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise RuntimeError(f"envoy exited with {proc.returncode}:\n{log.read_text()[-4000:]}")
        try:
            conn = http.client.HTTPConnection("127.0.0.1", admin_port, timeout=1)
            conn.request("GET", "/ready")
            resp = conn.getresponse()
            if resp.status == 200 and resp.read().strip() == b"LIVE":
                return
        except OSError:
            pass
        time.sleep(0.1)
    raise TimeoutError(f"envoy not ready:\n{log.read_text()[-4000:]}")


@pytest.fixture(scope="module")
def gateway(
    fake_manager: tuple[FakeManager, Path], tmp_path_factory: pytest.TempPathFactory
) -> Iterator[Gateway]:
    manager, desc = fake_manager
    tmp = tmp_path_factory.mktemp("envoy")
    port, admin_port, storage_port = free_ports(3)
    web_root = tmp / "web"
    (web_root / "assets").mkdir(parents=True)
    (web_root / "index.html").write_text("<!doctype html><title>bai</title>")
    (web_root / "assets" / "app.js").write_text("console.log('bai');\n" * 5000)
    config = tmp / "gateway.yaml"
    config.write_text(
        render_gateway_config(
            listen_port=port,
            admin_port=admin_port,
            manager_addr=("127.0.0.1", manager.port),
            storage_addr=("127.0.0.1", storage_port),
            descriptor_path=desc,
            services=[*services_in_descriptor(DESCRIPTOR), STREAM_SERVICE],
            listen_address="127.0.0.1",
            web_root=web_root,
        )
    )
    log = tmp / "envoy.log"
    with log.open("wb") as out:
        proc = subprocess.Popen(
            gateway_process_argv(config, log_level="warning"),
            stdout=out,
            stderr=subprocess.STDOUT,
        )
    try:
        wait_ready(admin_port, proc, log)
        yield Gateway(port, admin_port, manager, log, web_root)
    finally:
        proc.terminate()
        try:
            proc.wait(10)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(10)
