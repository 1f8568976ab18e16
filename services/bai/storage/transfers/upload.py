"""One resumable upload: checks, appending to the partial file, the atomic commit.

Bytes go to the staging .part file; when the committed bytes reach the
declared total, the sha256 is checked and the file is renamed into place
(renameat on the same file system), so a partial upload is never visible
under its final name. Quota is checked against the declared total before
anything is written, so a refused upload leaves nothing behind.
"""

from __future__ import annotations

import hashlib
import os
import re
import stat
from dataclasses import dataclass

from bai.common.errors import BaiError, FailedPrecondition, InvalidArgument, PermissionDenied
from bai.storage.paths import Parts, join
from bai.storage.quota import VFolderId
from bai.storage.transfers.staging import Staging, UploadHeader, staging_key
from bai.storage.volumes.safe_fs import (
    fs_error,
    lstat,
    opened_parent,
    opened_root,
    type_mismatch,
)
from bai.storage.volumes.vfs import VfsVolume

SHA256_HEX = re.compile(r"^[0-9a-f]{64}$")
MAX_CHUNK_BYTES = 4 << 20
HASH_READ_BYTES = 1 << 20
DEFAULT_MODE = 0o644


class ChecksumMismatch(BaiError):
    """The received bytes do not match the declared sha256 (DATA_LOSS)."""

    default_reason = "CHECKSUM_MISMATCH"


@dataclass(frozen=True)
class UploadRequest:
    vf: VFolderId
    parts: Parts
    total_size: int
    offset: int
    sha256: str
    mode: int
    max_size: int


@dataclass(frozen=True)
class UploadState:
    committed_size: int
    complete: bool
    sha256: str = ""


def check_request(req: UploadRequest) -> None:
    if not req.parts:
        raise InvalidArgument.field("path", "must name a file, not the folder root")
    if req.total_size < 0:
        raise InvalidArgument.field("total_size", "must be >= 0")
    if req.offset < 0 or req.offset > req.total_size:
        raise InvalidArgument.field("offset", "must be between 0 and total_size")
    if req.sha256 and not SHA256_HEX.match(req.sha256):
        raise InvalidArgument.field("sha256", "must be 64 lowercase hex digits")
    if req.mode > 0o7777:
        raise InvalidArgument.field("mode", "must be POSIX permission bits")
    if req.max_size and req.total_size > req.max_size:
        raise PermissionDenied(
            f"total_size {req.total_size} is over the token's max_size {req.max_size}",
            reason="TRANSFER_SCOPE_VIOLATION",
        )


def existing_size(root_fd: int, parts: Parts) -> int:
    """Size of the file the upload will replace (0: none); refuses directories."""
    try:
        with opened_parent(root_fd, parts) as parent:
            info = lstat(parent, parts[-1])
    except BaiError as exc:
        if exc.reason == "NOT_FOUND":
            return 0
        raise
    if info is None:
        return 0
    if stat.S_ISDIR(info.st_mode):
        raise type_mismatch(join(parts), "is a directory")
    return info.st_size if stat.S_ISREG(info.st_mode) else 0


class Upload:
    """An upload in progress on this stream; use `begin`, `write`, `finish`, `close`."""

    def __init__(self, volume: VfsVolume, req: UploadRequest) -> None:
        self.volume = volume
        self.req = req
        self.staging = Staging(volume.staging_dir)
        self.key = staging_key(req.vf, req.parts)
        self.fd = -1
        self.committed = 0
        self.hasher = hashlib.sha256()

    def begin(self) -> UploadState:
        req = self.req
        check_request(req)
        folder = self.volume.existing_folder(req.vf)
        with opened_root(folder) as root_fd:
            replaced = existing_size(root_fd, req.parts)
        header = UploadHeader(req.vf.vfid, join(req.parts), req.total_size, req.sha256, req.mode)
        previous = self.staging.read_header(self.key)
        committed = self.staging.committed(self.key) or 0
        resuming = req.offset > 0
        if resuming and previous != header:
            raise FailedPrecondition(
                "no upload of this file with this total_size, sha256 and mode is in progress",
                reason="UPLOAD_OFFSET_MISMATCH",
                metadata={"committed_size": "0"},
            )
        if resuming and committed != req.offset:
            raise FailedPrecondition(
                f"upload offset {req.offset} does not match the {committed} bytes committed",
                reason="UPLOAD_OFFSET_MISMATCH",
                metadata={"committed_size": str(committed)},
            )
        with self.volume.reservations:
            pending = self.staging.pending_bytes(req.vf.scope.name, exclude=self.key)
            self.volume.check_write(req.vf.scope, max(req.total_size - replaced, 0), pending)
            self.fd = self.staging.open_locked(self.key)
            if not resuming:
                os.ftruncate(self.fd, 0)
                self.staging.write_header(self.key, header)
        if resuming:
            self._rehash(req.offset)
        self.committed = req.offset
        os.lseek(self.fd, self.committed, os.SEEK_SET)
        return UploadState(self.committed, False)

    def _rehash(self, upto: int) -> None:
        done = 0
        while done < upto:
            block = os.pread(self.fd, min(HASH_READ_BYTES, upto - done), done)
            if not block:
                break
            self.hasher.update(block)
            done += len(block)

    def write(self, chunk: bytes) -> None:
        if len(chunk) > MAX_CHUNK_BYTES:
            raise InvalidArgument.field("chunk", f"must be at most {MAX_CHUNK_BYTES} bytes")
        if self.committed + len(chunk) > self.req.total_size:
            raise InvalidArgument.field("chunk", "goes beyond total_size")
        view = memoryview(chunk)
        while view:
            written = os.write(self.fd, view)
            view = view[written:]
        self.hasher.update(chunk)
        self.committed += len(chunk)

    def finish(self) -> UploadState:
        """Commit when complete; otherwise report what is committed so far."""
        if self.committed < self.req.total_size:
            return UploadState(self.committed, False)
        digest = self.hasher.hexdigest()
        if self.req.sha256 and digest != self.req.sha256:
            self.staging.discard(self.key)
            raise ChecksumMismatch(
                f"sha256 of the received bytes is {digest}, not {self.req.sha256}"
            )
        os.fchmod(self.fd, self.req.mode or DEFAULT_MODE)
        self._move_into_place()
        self.staging.header_path(self.key).unlink(missing_ok=True)
        return UploadState(self.committed, True, digest)

    def _move_into_place(self) -> None:
        parts = self.req.parts
        folder = self.volume.existing_folder(self.req.vf)
        staging_fd = os.open(self.staging.directory, os.O_RDONLY | os.O_DIRECTORY | os.O_CLOEXEC)
        try:
            with opened_root(folder) as root_fd, opened_parent(root_fd, parts, create=True) as dst:
                os.rename(
                    self.staging.part_path(self.key).name,
                    parts[-1],
                    src_dir_fd=staging_fd,
                    dst_dir_fd=dst,
                )
        except OSError as exc:
            raise fs_error(exc, join(parts)) from None
        finally:
            os.close(staging_fd)

    def close(self) -> None:
        if self.fd >= 0:
            os.close(self.fd)
            self.fd = -1


def upload_offset(volume: VfsVolume, vf: VFolderId, parts: Parts) -> tuple[int, int, bool]:
    """(committed, total, complete) for GetUploadOffset."""
    if not parts:
        raise InvalidArgument.field("path", "must name a file, not the folder root")
    staging = Staging(volume.staging_dir)
    key = staging_key(vf, parts)
    header = staging.read_header(key)
    if header is not None:
        return staging.committed(key) or 0, header.total_size, False
    folder = volume.existing_folder(vf)
    with opened_root(folder) as root_fd:
        try:
            with opened_parent(root_fd, parts) as parent:
                info = lstat(parent, parts[-1])
        except BaiError:
            info = None
    return 0, 0, info is not None and stat.S_ISREG(info.st_mode)
