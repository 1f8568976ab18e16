"""The fake vfolder backend for SDK and CLI tests: the fake manager (auth, vfolders,
background tasks for clones) and the fake storage proxy FileService, each a real
grpc server on a free port of its own, like a manager and a storage proxy behind
Envoy."""

from __future__ import annotations

from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import grpc

from bai.api.manager.v1 import auth_pb2_grpc, bgtask_pb2_grpc, vfolder_pb2_grpc
from tests.cli.fake_vfolder_files import FileServer, Storage
from tests.cli.fake_vfolder_service import FakeVFolders
from tests.cli.fake_vfolder_state import Folders
from tests.client.fakes import Abort, FakeAuth, fail


class FakeTasks(bgtask_pb2_grpc.BackgroundTaskServiceServicer):
    SERVICE = "bai.api.manager.v1.BackgroundTaskService"

    def __init__(self, state: Folders) -> None:
        self.state = state
        self.fake = state.storage.fake

    def WatchTask(self, request: Any, context: grpc.ServicerContext) -> Iterator[Any]:
        try:
            self.fake.enter(context, request, f"/{self.SERVICE}/WatchTask")
            if request.task_id not in self.state.tasks:
                raise fail(grpc.StatusCode.NOT_FOUND, f"task {request.task_id} not found")
        except Abort as exc:
            context.abort_with_status(exc.status)
        yield from self.state.tasks[request.task_id]


class VFolderBackend:
    """The fake manager (auth, vfolders, tasks) and the fake storage proxy, each on a
    free port of its own, like a manager and a storage proxy behind Envoy."""

    def __init__(self, root: Path) -> None:
        self.storage = Storage(root)
        self.fake = self.storage.fake
        self.files = FileServer(self.storage)
        self.state = Folders(self.storage)
        self._server: grpc.Server | None = None

    def __enter__(self) -> VFolderBackend:
        self.files.start()
        self.state.file_service_address = self.files.address
        server = grpc.server(ThreadPoolExecutor(max_workers=8))
        auth_pb2_grpc.add_AuthServiceServicer_to_server(FakeAuth(self.fake), server)  # type: ignore[abstract]
        vfolder_pb2_grpc.add_VFolderServiceServicer_to_server(FakeVFolders(self.state), server)  # type: ignore[abstract]
        bgtask_pb2_grpc.add_BackgroundTaskServiceServicer_to_server(FakeTasks(self.state), server)  # type: ignore[abstract]
        port = server.add_insecure_port("127.0.0.1:0")
        server.start()
        self.fake.address = f"127.0.0.1:{port}"
        self._server = server
        return self

    def __exit__(self, *exc: object) -> None:
        if self._server is not None:
            self._server.stop(None).wait()
        self.files.stop()
