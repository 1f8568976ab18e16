"""The manager-facing StorageService (port 6022)."""

from __future__ import annotations

from bai.api.storage.v1 import storage_pb2_grpc
from bai.storage.api.file_op_rpcs import FileOpRpcs
from bai.storage.api.folder_rpcs import FolderRpcs
from bai.storage.api.volume_rpcs import VolumeRpcs
from bai.storage.context import StorageContext


class StorageServicer(VolumeRpcs, FolderRpcs, FileOpRpcs, storage_pb2_grpc.StorageServiceServicer):
    SERVICE = "bai.api.storage.v1.StorageService"
    manager_only = True

    def __init__(self, ctx: StorageContext) -> None:
        self.ctx = ctx
