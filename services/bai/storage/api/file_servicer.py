"""The client-facing FileService (port 6021, through Envoy): token-authorized transfers."""

from __future__ import annotations

import asyncio
import os
from collections.abc import AsyncIterator
from contextlib import aclosing

from bai.api.storage.v1 import file_pb2 as pb
from bai.api.storage.v1 import file_pb2_grpc
from bai.common.errors import FailedPrecondition, InvalidArgument
from bai.common.shared_secret import text_metadata
from bai.storage import folder_ops, tokens
from bai.storage.api import convert
from bai.storage.api.edge import (
    Context,
    client_streaming,
    server_streaming,
    unary,
)
from bai.storage.context import StorageContext
from bai.storage.paths import Parts, split_relpath
from bai.storage.quota import VFolderId
from bai.storage.transfers import download
from bai.storage.transfers.archive import folder_zip
from bai.storage.transfers.pipeline import prefetched, run_upload
from bai.storage.transfers.scope import READ_OPS, authorize
from bai.storage.transfers.upload import Upload, UploadRequest, upload_offset
from bai.storage.volumes.vfs import VfsVolume


def out_of_order(why: str) -> FailedPrecondition:
    return FailedPrecondition(why, reason="STREAM_OUT_OF_ORDER")


class FileServicer(file_pb2_grpc.FileServiceServicer):
    SERVICE = "bai.api.storage.v1.FileService"
    manager_only = False

    def __init__(self, ctx: StorageContext) -> None:
        self.ctx = ctx

    def _authorize(
        self, context: Context, token_field: str, path: str, ops: tuple[tokens.Op, ...]
    ) -> tuple[tokens.TransferClaims, VfsVolume, VFolderId, Parts]:
        token = tokens.bearer(text_metadata(context), token_field)
        return authorize(self.ctx, token, path, ops)

    @client_streaming
    async def Upload(
        self, requests: AsyncIterator[pb.UploadRequest], context: Context
    ) -> pb.UploadResponse:
        stream = requests.__aiter__()
        first = await anext(stream, None)
        if first is None or first.WhichOneof("payload") != "header":
            raise out_of_order("the first message must be the header")
        head = first.header
        claims, volume, vf, parts = self._authorize(context, head.token, head.path, ("upload",))
        upload = Upload(
            volume,
            UploadRequest(
                vf=vf,
                parts=parts,
                total_size=head.total_size,
                offset=head.offset,
                sha256=head.sha256,
                mode=head.mode,
                max_size=claims.max_size,
            ),
        )
        state = await run_upload(upload, _chunks(stream))
        return pb.UploadResponse(
            committed_size=state.committed_size, complete=state.complete, sha256=state.sha256
        )

    @unary
    async def GetUploadOffset(
        self, request: pb.GetUploadOffsetRequest, context: Context
    ) -> pb.GetUploadOffsetResponse:
        _, volume, vf, parts = self._authorize(context, request.token, request.path, ("upload",))
        committed, total, complete = await asyncio.to_thread(upload_offset, volume, vf, parts)
        return pb.GetUploadOffsetResponse(
            committed_size=committed, total_size=total, complete=complete
        )

    @server_streaming
    async def Download(
        self, request: pb.DownloadRequest, context: Context
    ) -> AsyncIterator[pb.DownloadResponse]:
        claims, volume, vf, parts = self._authorize(context, request.token, request.path, READ_OPS)
        if claims.op == "archive-download":
            if request.offset or request.length:
                raise InvalidArgument.field("offset", "ranges are not available for archives")
            async for reply in self._archive(volume, vf, parts):
                yield reply
            return
        fd, size = await asyncio.to_thread(download.open_file, volume, vf, parts)
        try:
            start, end = download.byte_range(size, request.offset, request.length)
            first = True
            async with aclosing(prefetched(download.read_chunks(fd, start, end))) as chunks:
                async for at, block in chunks:
                    yield pb.DownloadResponse(
                        chunk=block, offset=at, total_size=size if first else 0
                    )
                    first = False
            if first:
                yield pb.DownloadResponse(offset=start, total_size=size)
        finally:
            os.close(fd)

    async def _archive(
        self, volume: VfsVolume, vf: VFolderId, parts: Parts
    ) -> AsyncIterator[pb.DownloadResponse]:
        zipped = folder_zip(volume, vf, parts)
        at = 0
        try:
            async with aclosing(prefetched(zipped)) as chunks:
                async for block in chunks:
                    if block:
                        yield pb.DownloadResponse(chunk=block, offset=at)
                        at += len(block)
        finally:
            await asyncio.to_thread(zipped.close)

    @unary
    async def ListDirectory(
        self, request: pb.ListDirectoryRequest, context: Context
    ) -> pb.ListDirectoryResponse:
        claims, volume, vf, parts = self._authorize(context, request.token, request.path, READ_OPS)
        base = split_relpath(claims.relpath, "token.relpath")
        entries, next_token = await asyncio.to_thread(
            folder_ops.list_page, volume, vf, parts, base, request.page_size, request.page_token
        )
        return pb.ListDirectoryResponse(
            entries=[convert.file_entry(e) for e in entries], next_page_token=next_token
        )


async def _chunks(stream: AsyncIterator[pb.UploadRequest]) -> AsyncIterator[bytes]:
    async for message in stream:
        if message.WhichOneof("payload") != "chunk":
            raise out_of_order("only data chunks may follow the header")
        yield message.chunk
