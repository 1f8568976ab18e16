"""FileService (the storage proxy's gRPC transfers) behind the same three operations
as bai.client.vfolder_http.HttpFiles, for bai.client.vfolder_transfers."""

from __future__ import annotations

import os
from collections.abc import Iterator
from typing import BinaryIO

import grpc

from bai.api.storage.v1 import file_pb2, file_pb2_grpc
from bai.client import errors
from bai.client.vfolder_http import CHUNK_SIZE, OnBlock, Progress, UploadState


class _Chunks:
    """The Upload request stream from ``offset``; notes a local read error, which grpc
    would otherwise turn into a cancelled call."""

    def __init__(
        self, header: file_pb2.UploadHeader, path: str | os.PathLike[str], progress: Progress
    ) -> None:
        self.header = header
        self.path = path
        self.progress = progress
        self.error: OSError | None = None

    def __iter__(self) -> Iterator[file_pb2.UploadRequest]:
        yield file_pb2.UploadRequest(header=self.header)
        position, total = self.header.offset, self.header.total_size
        try:
            with open(self.path, "rb") as stream:
                stream.seek(position)
                while position < total:
                    data = stream.read(min(CHUNK_SIZE, total - position))
                    if not data:
                        return  # the file shrank: the server answers the short upload
                    position += len(data)
                    yield file_pb2.UploadRequest(chunk=data)
                    self.progress(position, total)
        except OSError as exc:
            self.error = exc
            raise


class GrpcFiles:
    """FileService behind the same three operations as HttpFiles."""

    def __init__(self, stub: file_pb2_grpc.FileServiceStub) -> None:
        self.stub = stub

    def upload_offset(self, token: str) -> UploadState:
        try:
            reply = self.stub.GetUploadOffset(file_pb2.GetUploadOffsetRequest(token=token))
        except grpc.RpcError as exc:
            raise errors.from_rpc_error(exc) from exc
        return UploadState(reply.committed_size, reply.total_size, reply.complete)

    def upload(
        self,
        token: str,
        source: str | os.PathLike[str],
        *,
        offset: int,
        total: int,
        sha256: str,
        mode: int,
        progress: Progress,
    ) -> UploadState:
        header = file_pb2.UploadHeader(
            token=token, total_size=total, offset=offset, sha256=sha256, mode=mode
        )
        chunks = _Chunks(header, source, progress)
        try:
            reply = self.stub.Upload(iter(chunks))
        except grpc.RpcError as exc:
            if chunks.error is not None:
                raise chunks.error from exc
            raise errors.from_rpc_error(exc) from exc
        return UploadState(reply.committed_size, total, reply.complete, reply.sha256)

    def download(
        self, token: str, offset: int, length: int, sink: BinaryIO, on_block: OnBlock
    ) -> None:
        call = self.stub.Download(
            file_pb2.DownloadRequest(token=token, offset=offset, length=length)
        )
        try:
            for reply in call:
                sink.write(reply.chunk)
                on_block(reply.offset, len(reply.chunk), reply.total_size)
        except grpc.RpcError as exc:
            raise errors.from_rpc_error(exc) from exc
        finally:
            call.cancel()
