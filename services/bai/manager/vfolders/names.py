"""The strings folders are stored with (as upstream writes them) and their proto enums."""

from __future__ import annotations

import uuid

from bai.api.common.v1 import storage_pb2 as common
from bai.api.manager.v1 import vfolder_pb2 as pb

STATUS = {
    "ready": pb.FOLDER_STATUS_READY,
    "performing": pb.FOLDER_STATUS_PERFORMING,
    "cloning": pb.FOLDER_STATUS_CLONING,
    "mounted": pb.FOLDER_STATUS_MOUNTED,
    "error": pb.FOLDER_STATUS_ERROR,
    "delete-pending": pb.FOLDER_STATUS_DELETE_PENDING,
    "delete-ongoing": pb.FOLDER_STATUS_DELETE_ONGOING,
    "delete-complete": pb.FOLDER_STATUS_DELETE_COMPLETE,
    "delete-error": pb.FOLDER_STATUS_DELETE_ERROR,
}
STATUS_NAME: dict[int, str] = {int(v): k for k, v in STATUS.items()}

PERMISSION = {
    "ro": common.MOUNT_PERMISSION_READ_ONLY,
    "rw": common.MOUNT_PERMISSION_READ_WRITE,
    "wd": common.MOUNT_PERMISSION_READ_WRITE_DELETE,
}
PERMISSION_NAME: dict[int, str] = {int(v): k for k, v in PERMISSION.items()}

USAGE_MODE = {
    "general": common.FOLDER_USAGE_MODE_GENERAL,
    "model": common.FOLDER_USAGE_MODE_MODEL,
    "data": common.FOLDER_USAGE_MODE_DATA,
}
USAGE_MODE_NAME: dict[int, str] = {int(v): k for k, v in USAGE_MODE.items()}

OWNERSHIP = {"user": pb.FOLDER_OWNERSHIP_TYPE_USER, "group": pb.FOLDER_OWNERSHIP_TYPE_PROJECT}
OWNERSHIP_NAME: dict[int, str] = {int(v): k for k, v in OWNERSHIP.items()}

INVITATION_STATE = {
    "pending": pb.FOLDER_INVITATION_STATUS_PENDING,
    "accepted": pb.FOLDER_INVITATION_STATUS_ACCEPTED,
    "rejected": pb.FOLDER_INVITATION_STATUS_REJECTED,
    "canceled": pb.FOLDER_INVITATION_STATUS_CANCELLED,
}
INVITATION_STATE_NAME: dict[int, str] = {int(v): k for k, v in INVITATION_STATE.items()}

NO_PERMISSION = common.MOUNT_PERMISSION_UNSPECIFIED
NO_USAGE_MODE = common.FOLDER_USAGE_MODE_UNSPECIFIED

# Statuses listed when a ListVFolders request names none (the trash is asked for).
LISTED_BY_DEFAULT = ("ready", "performing", "cloning", "mounted", "error")
TRASH = "delete-pending"
PURGING = ("delete-ongoing", "delete-complete")
# Sessions in these statuses no longer hold their mounts.
ENDED_SESSION_STATUSES = ("TERMINATED", "CANCELLED", "ERROR")


def quota_scope_id(ownership: str, owner_id: uuid.UUID) -> str:
    """ "user:<uuid>" or "project:<uuid>", as logs and tokens write quota scopes."""
    return f"{'project' if ownership == 'group' else 'user'}:{owner_id}"


def quota_scope(scope_id: str) -> common.QuotaScope:
    kind, _, owner = scope_id.partition(":")
    scope_type = (
        common.QUOTA_SCOPE_TYPE_PROJECT if kind == "project" else common.QUOTA_SCOPE_TYPE_USER
    )
    return common.QuotaScope(type=scope_type, id=owner)
