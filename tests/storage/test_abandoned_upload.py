"""An upload left unfinished is cleaned up by the running proxy's sweeper after the TTL."""

from __future__ import annotations

import os
from pathlib import Path

import grpc

from bai.api.storage.v1 import file_pb2, file_pb2_grpc, storage_pb2_grpc
from bai.api.storage.v1 import storage_pb2 as pb
from bai.storage.main import start_storage
from tests.e2e.waits import eventually
from tests.storage.conftest import AUTH, folder_ref, storage_config
from tests.storage.transfer_client import upload


async def test_abandoned_partial_upload_is_swept(tmp_path: Path) -> None:
    config = storage_config(
        tmp_path, upload_staging_ttl_seconds=0.5, upload_sweep_interval_seconds=0.1
    )
    running = await start_storage(config)
    try:
        ref = folder_ref()
        address = f"127.0.0.1:{running.manager_port}"
        async with grpc.aio.insecure_channel(address) as channel:
            storage = storage_pb2_grpc.StorageServiceStub(channel)
            await storage.CreateVFolder(pb.CreateVFolderRequest(vfolder=ref), metadata=AUTH)
            token = (
                await storage.IssueTransferToken(
                    pb.IssueTransferTokenRequest(
                        op=pb.TRANSFER_OP_UPLOAD, vfolder=ref, relpath="left.bin"
                    ),
                    metadata=AUTH,
                )
            ).token
        staging = tmp_path / ".bai" / "staging"
        async with grpc.aio.insecure_channel(f"127.0.0.1:{running.grpc_port}") as channel:
            files = file_pb2_grpc.FileServiceStub(channel)
            reply = await upload(files, token, b"x" * 1000, total_size=5000)
            assert (reply.committed_size, reply.complete) == (1000, False)
            assert len(os.listdir(staging)) == 2  # the partial bytes and its header
            await eventually(lambda: os.listdir(staging) == [], "the partial upload swept")
            state = await files.GetUploadOffset(file_pb2.GetUploadOffsetRequest(token=token))
            assert (state.committed_size, state.complete) == (0, False)
    finally:
        await running.stop()
