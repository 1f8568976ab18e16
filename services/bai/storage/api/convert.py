"""Messages to domain values and back."""

from __future__ import annotations

from google.protobuf.timestamp_pb2 import Timestamp

from bai.api.common.v1 import storage_pb2 as common
from bai.api.storage.v1 import storage_pb2
from bai.common.errors import InvalidArgument
from bai.storage.listing import Entry
from bai.storage.quota import QuotaScopeId, VFolderId, parse_uuid
from bai.storage.tokens import Op
from bai.storage.volumes.vfs import CAPABILITIES, QuotaUsage

SCOPE_TYPES = {
    common.QUOTA_SCOPE_TYPE_USER: "user",
    common.QUOTA_SCOPE_TYPE_PROJECT: "project",
}
CAPABILITY_VALUES = {
    "vfolder": storage_pb2.VOLUME_CAPABILITY_VFOLDER,
    "quota": storage_pb2.VOLUME_CAPABILITY_QUOTA,
}
FILE_TYPES = {
    "file": common.FILE_TYPE_FILE,
    "directory": common.FILE_TYPE_DIRECTORY,
    "symlink": common.FILE_TYPE_SYMLINK,
    "other": common.FILE_TYPE_OTHER,
}
OPS: dict[int, Op] = {
    storage_pb2.TRANSFER_OP_UPLOAD: "upload",
    storage_pb2.TRANSFER_OP_DOWNLOAD: "download",
    storage_pb2.TRANSFER_OP_ARCHIVE_DOWNLOAD: "archive-download",
}


def quota_scope(msg: common.QuotaScope, field: str = "quota_scope") -> QuotaScopeId:
    kind = SCOPE_TYPES.get(msg.type)
    if kind is None:
        raise InvalidArgument.field(f"{field}.type", "must be USER or PROJECT")
    return QuotaScopeId(kind, parse_uuid(msg.id, f"{field}.id"))  # type: ignore[arg-type]


def vfolder(msg: storage_pb2.VFolderRef, field: str = "vfolder") -> tuple[str, VFolderId]:
    if not msg.volume:
        raise InvalidArgument.field(f"{field}.volume", "is required")
    scope = quota_scope(msg.quota_scope, f"{field}.quota_scope")
    return msg.volume, VFolderId(scope, parse_uuid(msg.folder_id, f"{field}.folder_id"))


def usage(value: QuotaUsage) -> storage_pb2.QuotaUsage:
    return storage_pb2.QuotaUsage(limit_bytes=value.limit_bytes, used_bytes=value.used_bytes)


def capabilities() -> list[storage_pb2.VolumeCapability.ValueType]:
    return [CAPABILITY_VALUES[name] for name in CAPABILITIES]


def timestamp(seconds: float) -> Timestamp:
    stamp = Timestamp()
    stamp.FromNanoseconds(int(seconds * 1e9))
    return stamp


def file_entry(entry: Entry) -> common.FileEntry:
    return common.FileEntry(
        name=entry.name,
        path=entry.path,
        type=FILE_TYPES[entry.type],
        size=entry.size,
        mode=entry.mode,
        modified_at=timestamp(entry.modified_at),
        created_at=timestamp(entry.created_at),
        symlink_target=entry.symlink_target,
    )
