"""The SDK's vfolder transfers against a real storage proxy (`bai storage start` as a
process with a temp-dir vfs volume). The manager side is a small fake whose
RequestUploadToken/RequestDownloadToken ask that proxy for real tokens, as the
manager does. The proxy is killed (SIGKILL) in the middle of an upload and
restarted; the upload resumes and its checksum matches."""

from __future__ import annotations

import hashlib
import io
import os
import threading
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import grpc
import pytest

from bai.api.common.v1 import storage_pb2 as common
from bai.api.manager.v1 import vfolder_pb2, vfolder_pb2_grpc
from bai.api.storage.v1 import storage_pb2, storage_pb2_grpc
from bai.client import Client, KeypairCredentials
from bai.client.vfolder_archive import download_dir
from bai.client.vfolder_transfers import TransferRetry, download_file, upload_file
from bai.storage.testing import BAI, ProxyProcess, running_proxy
from tests.client.fakes import ACCESS_KEY, SECRET_KEY, Fake, handler, serve

MiB = 1 << 20
MANAGER_TOKEN = "manager-secret-for-sdk-tests"
JWT_SECRET = "jwt-secret-for-sdk-tests-" + "q" * 32
AUTH = (("x-bai-storage-auth-token", MANAGER_TOKEN),)
PATIENT = TransferRetry(attempts=12, initial_backoff=0.2, max_backoff=1.0)

pytestmark = pytest.mark.skipif(not BAI.exists(), reason=f"{BAI} missing (the bai console script)")


class TokenIssuer(vfolder_pb2_grpc.VFolderServiceServicer):
    """The two token RPCs of VFolderService, issuing real tokens for one folder."""

    SERVICE = "bai.api.manager.v1.VFolderService"

    def __init__(self, fake: Fake, proxy: ProxyProcess, ref: storage_pb2.VFolderRef) -> None:
        self.fake = fake
        self.proxy = proxy
        self.ref = ref

    def _ticket(self, op: Any, relpath: str) -> vfolder_pb2.TransferTicket:
        with grpc.insecure_channel(f"127.0.0.1:{self.proxy.manager_port}") as channel:
            reply = storage_pb2_grpc.StorageServiceStub(channel).IssueTransferToken(
                storage_pb2.IssueTransferTokenRequest(op=op, vfolder=self.ref, relpath=relpath),
                metadata=AUTH,
            )
        return vfolder_pb2.TransferTicket(
            token=reply.token,
            expires_at=reply.expires_at,
            file_service_address=f"127.0.0.1:{self.proxy.client_port}",
        )

    @handler
    def RequestUploadToken(self, request: Any, context: Any) -> Any:
        ticket = self._ticket(storage_pb2.TRANSFER_OP_UPLOAD, request.path)
        return vfolder_pb2.RequestUploadTokenResponse(ticket=ticket)

    @handler
    def RequestDownloadToken(self, request: Any, context: Any) -> Any:
        op = storage_pb2.TRANSFER_OP_ARCHIVE_DOWNLOAD if request.archive else 2
        ticket = self._ticket(op, request.path)
        return vfolder_pb2.RequestDownloadTokenResponse(ticket=ticket)


@pytest.fixture
def proxy(tmp_path: Path) -> Iterator[ProxyProcess]:
    with running_proxy(tmp_path, jwt_secret=JWT_SECRET, manager_token=MANAGER_TOKEN) as process:
        yield process


@pytest.fixture
def client(proxy: ProxyProcess) -> Iterator[Client]:
    scope = common.QuotaScope(type=common.QUOTA_SCOPE_TYPE_USER, id=str(uuid.uuid4()))
    ref = storage_pb2.VFolderRef(volume="local", quota_scope=scope, folder_id=str(uuid.uuid4()))
    with grpc.insecure_channel(f"127.0.0.1:{proxy.manager_port}") as channel:
        storage_pb2_grpc.StorageServiceStub(channel).CreateVFolder(
            storage_pb2.CreateVFolderRequest(vfolder=ref), metadata=AUTH
        )
    fake = Fake()
    issuer = TokenIssuer(fake, proxy, ref)  # type: ignore[abstract]  # two RPCs only
    with serve(fake, [(vfolder_pb2_grpc.add_VFolderServiceServicer_to_server, issuer)]):
        with Client(fake.address, KeypairCredentials(ACCESS_KEY, SECRET_KEY)) as client:
            yield client


def test_upload_survives_a_killed_proxy_and_downloads_match(
    proxy: ProxyProcess, client: Client, tmp_path: Path
) -> None:
    source = tmp_path / "big.bin"
    source.write_bytes(os.urandom(8 * MiB + 12345))
    digest = hashlib.sha256(source.read_bytes()).hexdigest()
    restarted = threading.Event()

    def kill_midway(done: int, total: int) -> None:
        if done >= 3 * MiB and not restarted.is_set():
            restarted.set()
            proxy.kill()
            threading.Thread(target=proxy.start).start()

    result = upload_file(
        client, "folder-id", source, "models/big.bin", retry=PATIENT, progress=kill_midway
    )
    assert restarted.is_set() and result.attempts > 1
    assert result.sha256 == digest

    sink = io.BytesIO()
    download_file(client, "folder-id", "models/big.bin", sink, offset=MiB, length=2 * MiB)
    assert sink.getvalue() == source.read_bytes()[MiB : 3 * MiB]
    _, count = download_dir(client, "folder-id", "models", tmp_path / "models")
    assert count == 1
    assert hashlib.sha256((tmp_path / "models" / "big.bin").read_bytes()).hexdigest() == digest
