"""The `vfs` backend: quota scopes and folders as directories of a local directory.

Layout under the volume path:

    <type>-<scope hex>/<folder hex>/...      folders, grouped by quota scope
    .bai/quota/<type>-<scope hex>.json       {"limit": bytes} (0: unlimited)
    .bai/metadata/<type>-<scope hex>/<folder hex>   the opaque metadata blob
    .bai/staging/                            partial uploads (bai.storage.transfers)
    .bai/trash/                              deleted folders being reclaimed

Limits are enforced by the proxy on the writes it makes (uploads, mkdir,
clone); usage is the apparent size of the regular files, walked.
"""

from __future__ import annotations

import json
import os
import shutil
import threading
import uuid
from dataclasses import dataclass
from pathlib import Path

from bai.common.errors import FailedPrecondition, InvalidArgument, NotFound
from bai.storage.config import VolumeConfig
from bai.storage.quota import QuotaScopeId, VFolderId, check_fits, check_not_full
from bai.storage.volumes.safe_fs import path_usage

CAPABILITIES = ("vfolder", "quota")
MAX_METADATA_BYTES = 1 << 20
CONTROL_DIR = ".bai"


@dataclass(frozen=True)
class QuotaUsage:
    limit_bytes: int
    used_bytes: int


class VfsVolume:
    backend = "vfs"
    capabilities = CAPABILITIES

    def __init__(self, name: str, config: VolumeConfig) -> None:
        self.name = name
        self.root = Path(config.path).resolve()
        self.mount_root = Path(config.mount_path) if config.mount_path else self.root
        self.control = self.root / CONTROL_DIR
        self.staging_dir = self.control / "staging"
        self.trash_dir = self.control / "trash"
        # Held from an upload's quota check until its reservation (the staging
        # header) is written, so two uploads cannot both fit into the same room.
        self.reservations = threading.Lock()

    def prepare(self) -> None:
        for sub in ("quota", "metadata", "staging", "trash"):
            (self.control / sub).mkdir(parents=True, exist_ok=True)

    # --- volume ---

    def healthy(self) -> tuple[bool, str]:
        if not self.root.is_dir():
            return False, f"{self.root} is not a directory"
        if not os.access(self.root, os.W_OK):
            return False, f"{self.root} is not writable"
        return True, ""

    def fs_usage(self) -> tuple[int, int]:
        st = os.statvfs(self.root)
        capacity = st.f_blocks * st.f_frsize
        return capacity, capacity - st.f_bfree * st.f_frsize

    # --- quota scopes ---

    def scope_dir(self, scope: QuotaScopeId) -> Path:
        return self.root / scope.dirname

    def _limit_file(self, scope: QuotaScopeId) -> Path:
        return self.control / "quota" / f"{scope.dirname}.json"

    def scope_limit(self, scope: QuotaScopeId) -> int:
        try:
            return int(json.loads(self._limit_file(scope).read_text())["limit"])
        except FileNotFoundError:
            return 0

    def scope_used(self, scope: QuotaScopeId) -> int:
        return path_usage(self.scope_dir(scope))[1]

    def _write_limit(self, scope: QuotaScopeId, limit: int) -> None:
        if limit < 0:
            raise InvalidArgument.field("limit_bytes", "must be >= 0 (0: unlimited)")
        path = self._limit_file(scope)
        tmp = path.with_suffix(f".{uuid.uuid4().hex}.tmp")
        tmp.write_text(json.dumps({"limit": limit}))
        tmp.replace(path)

    def scope_usage(self, scope: QuotaScopeId) -> QuotaUsage:
        if not self.scope_dir(scope).is_dir():
            raise NotFound(f"quota scope {scope.name} does not exist on {self.name}")
        return QuotaUsage(self.scope_limit(scope), self.scope_used(scope))

    def create_scope(self, scope: QuotaScopeId, limit: int) -> QuotaUsage:
        self._write_limit(scope, limit)
        self.scope_dir(scope).mkdir(exist_ok=True)
        return self.scope_usage(scope)

    def update_scope(self, scope: QuotaScopeId, limit: int) -> QuotaUsage:
        self.scope_usage(scope)
        self._write_limit(scope, limit)
        return self.scope_usage(scope)

    def delete_scope(self, scope: QuotaScopeId) -> None:
        path = self.scope_dir(scope)
        try:
            folders = os.listdir(path)
        except FileNotFoundError:
            return
        if folders:
            raise FailedPrecondition(
                f"quota scope {scope.name} still holds {len(folders)} folders", reason="IN_USE"
            )
        path.rmdir()
        self._limit_file(scope).unlink(missing_ok=True)

    def check_write(self, scope: QuotaScopeId, adding: int, pending: int = 0) -> None:
        """Refuse a write of `adding` bytes (plus `pending` reserved by running uploads)."""
        check_fits(scope, self.scope_limit(scope), self.scope_used(scope) + pending, adding)

    # --- folders ---

    def folder_dir(self, vf: VFolderId) -> Path:
        return self.scope_dir(vf.scope) / vf.folder

    def existing_folder(self, vf: VFolderId) -> Path:
        path = self.folder_dir(vf)
        if not path.is_dir() or path.is_symlink():
            raise NotFound(f"folder {vf.vfid} does not exist on {self.name}")
        return path

    def create_folder(self, vf: VFolderId, mode: int) -> None:
        path = self.folder_dir(vf)
        if path.is_dir():
            return
        scope = vf.scope
        check_not_full(scope, self.scope_limit(scope), self.scope_used(scope))
        self.scope_dir(scope).mkdir(exist_ok=True)
        path.mkdir(mode=mode or 0o755, exist_ok=True)
        path.chmod(mode or 0o755)

    def delete_folder(self, vf: VFolderId) -> Path | None:
        """Hide the folder at once; returns the trash path to reclaim (None: was missing)."""
        path = self.folder_dir(vf)
        self._metadata_file(vf).unlink(missing_ok=True)
        if not path.exists():
            return None
        trash = self.trash_dir / f"{vf.folder}-{uuid.uuid4().hex[:8]}"
        path.rename(trash)
        return trash

    def reclaim(self, trash: Path) -> None:
        shutil.rmtree(trash, ignore_errors=True)

    def folder_usage(self, vf: VFolderId) -> tuple[int, int]:
        return path_usage(self.existing_folder(vf))

    # --- metadata ---

    def _metadata_file(self, vf: VFolderId) -> Path:
        return self.control / "metadata" / vf.scope.dirname / vf.folder

    def get_metadata(self, vf: VFolderId) -> bytes:
        self.existing_folder(vf)
        try:
            return self._metadata_file(vf).read_bytes()
        except FileNotFoundError:
            return b""

    def set_metadata(self, vf: VFolderId, blob: bytes) -> None:
        if len(blob) > MAX_METADATA_BYTES:
            raise InvalidArgument.field("metadata", "must be at most 1 MiB")
        self.existing_folder(vf)
        path = self._metadata_file(vf)
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp = path.with_name(f".{path.name}.{uuid.uuid4().hex}.tmp")
        tmp.write_bytes(blob)
        tmp.replace(path)
