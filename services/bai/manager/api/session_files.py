"""SessionService file RPCs: UploadSessionFile, DownloadSessionFile, ListSessionFiles.

Authorization is Execute's for writes (owner, domain admin, superadmin;
monitors get READ_ONLY_ROLE) and GetSession's for reads (monitors may list
and download). The relays are in bai.manager.sessions.files.
"""

from __future__ import annotations

from collections.abc import AsyncIterator

from bai.api.manager.v1 import session_pb2 as pb
from bai.api.manager.v1 import session_pb2_grpc as pb_grpc
from bai.common.errors import FailedPrecondition, FieldViolation, InvalidArgument
from bai.manager.api.rpc import Call, unary
from bai.manager.api.stream_auth import client_stream, server_stream
from bai.manager.context import ManagerContext
from bai.manager.sessions import files, queries


def _out_of_order(what: str) -> FailedPrecondition:
    return FailedPrecondition(what, reason="STREAM_OUT_OF_ORDER")


async def _chunks(requests: AsyncIterator[pb.UploadSessionFileRequest]) -> AsyncIterator[bytes]:
    async for request in requests:
        if request.WhichOneof("payload") != "chunk":
            raise _out_of_order("only chunks may follow the header")
        yield request.chunk


class SessionFiles(pb_grpc.SessionServiceServicer):
    ctx: ManagerContext

    async def _target(
        self, call: Call, session_id: str, kernel_id: str, *, write: bool
    ) -> files.Target:
        sid = queries.parse_session_id(session_id, "header.session_id" if write else "session_id")
        async with self.ctx.sessions() as db:
            if write:
                loaded = await queries.load_writable(db, call.principal, sid)
            else:
                loaded = await queries.load_visible(db, call.principal, sid)
        return files.target(loaded, kernel_id)

    @client_stream()
    async def UploadSessionFile(
        self, requests: AsyncIterator[pb.UploadSessionFileRequest], call: Call
    ) -> pb.UploadSessionFileResponse:
        first = await anext(aiter(requests), None)
        if first is None:
            raise InvalidArgument([FieldViolation("header", "send the header first")])
        if first.WhichOneof("payload") != "header":
            raise _out_of_order("the first message must carry the header")
        header = first.header
        files.check_request(
            path=header.path, kernel_id=header.kernel_id, prefix="header.", path_required=True
        )
        files.check_size(header.size)
        to = await self._target(call, header.session_id, header.kernel_id, write=True)
        stored = await files.upload(
            self.ctx.agent_pool, to, header.path, header.size, _chunks(requests)
        )
        return pb.UploadSessionFileResponse(path=stored.path, size=stored.size)

    @server_stream()
    async def DownloadSessionFile(
        self, request: pb.DownloadSessionFileRequest, call: Call
    ) -> AsyncIterator[pb.DownloadSessionFileResponse]:
        files.check_request(path=request.path, kernel_id=request.kernel_id, path_required=True)
        source = await self._target(call, request.session_id, request.kernel_id, write=False)
        async for chunk, size in files.download(self.ctx.agent_pool, source, request.path):
            reply = pb.DownloadSessionFileResponse(chunk=chunk)
            if size is not None:
                reply.size = size
            yield reply

    @unary()
    async def ListSessionFiles(
        self, request: pb.ListSessionFilesRequest, call: Call
    ) -> pb.ListSessionFilesResponse:
        files.check_request(path=request.path, kernel_id=request.kernel_id)
        source = await self._target(call, request.session_id, request.kernel_id, write=False)
        entries, truncated = await files.list_files(self.ctx.agent_pool, source, request.path)
        return pb.ListSessionFilesResponse(entries=entries, truncated=truncated)
