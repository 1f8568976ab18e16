"""Walking a folder without ever leaving it.

Every path is opened one part at a time relative to the folder root's
descriptor (openat), with O_NOFOLLOW: a symlink that a session made inside
a folder, pointing anywhere, is never followed by the proxy. OS errors turn
into the domain errors the contracts name.
"""

from __future__ import annotations

import errno
import os
import stat
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from bai.common.errors import (
    AlreadyExists,
    BaiError,
    FailedPrecondition,
    InvalidArgument,
    NotFound,
    ResourceExhausted,
    Unavailable,
)
from bai.storage.paths import Parts, join

DIR_FLAGS = os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW | os.O_CLOEXEC
FILE_FLAGS = os.O_RDONLY | os.O_NOFOLLOW | os.O_CLOEXEC


def type_mismatch(path: str, why: str) -> FailedPrecondition:
    return FailedPrecondition(
        f"{path or '/'} {why}", reason="PATH_TYPE_MISMATCH", metadata={"path": path}
    )


def fs_error(exc: OSError, path: str) -> BaiError:
    """The domain error for an OS error on `path` (folder-relative)."""
    code = exc.errno
    if code == errno.ENOENT:
        return NotFound(f"{path or '/'} does not exist")
    if code in (errno.ENOTDIR, errno.ELOOP):
        return type_mismatch(path, "is not a directory (symlinks are not followed)")
    if code == errno.EISDIR:
        return type_mismatch(path, "is a directory")
    if code == errno.ENOTEMPTY:
        return type_mismatch(path, "is a directory that is not empty")
    if code == errno.EEXIST:
        return AlreadyExists(f"{path} already exists")
    if code == errno.ENAMETOOLONG:
        return InvalidArgument.field("path", "name too long")
    if code == errno.EINVAL:
        return InvalidArgument.field("path", f"{path}: {exc.strerror}")
    if code in (errno.ENOSPC, errno.EDQUOT):
        return ResourceExhausted(f"no space left: {exc.strerror}", reason="STORAGE_QUOTA_EXCEEDED")
    return Unavailable(f"volume error on {path}: {exc.strerror}")


@contextmanager
def opened_root(path: Path) -> Iterator[int]:
    """The descriptor of a folder root (the proxy made it; it is never a symlink)."""
    try:
        fd = os.open(path, DIR_FLAGS)
    except OSError as exc:
        if exc.errno == errno.ENOENT:
            raise NotFound(f"folder {path.name} does not exist") from None
        raise fs_error(exc, "") from None
    try:
        yield fd
    finally:
        os.close(fd)


def _open_step(dir_fd: int, name: str, create: bool) -> int:
    try:
        return os.open(name, DIR_FLAGS, dir_fd=dir_fd)
    except FileNotFoundError:
        if not create:
            raise
    try:
        os.mkdir(name, 0o755, dir_fd=dir_fd)
    except FileExistsError:
        pass
    return os.open(name, DIR_FLAGS, dir_fd=dir_fd)


@contextmanager
def opened_dir(root_fd: int, parts: Parts, *, create: bool = False) -> Iterator[int]:
    """A descriptor of the directory `parts` under root, each step unfollowed."""
    fd = os.dup(root_fd)
    try:
        for i, name in enumerate(parts):
            try:
                step = _open_step(fd, name, create)
            except OSError as exc:
                raise fs_error(exc, join(parts[: i + 1])) from None
            os.close(fd)
            fd = step
        yield fd
    finally:
        os.close(fd)


@contextmanager
def opened_parent(root_fd: int, parts: Parts, *, create: bool = False) -> Iterator[int]:
    """The directory holding `parts[-1]` (which must not be the root itself)."""
    if not parts:
        raise InvalidArgument.field("path", "must name an entry, not the folder root")
    with opened_dir(root_fd, parts[:-1], create=create) as fd:
        yield fd


def lstat(dir_fd: int, name: str) -> os.stat_result | None:
    try:
        return os.stat(name, dir_fd=dir_fd, follow_symlinks=False)
    except FileNotFoundError:
        return None


def open_regular_file(root_fd: int, parts: Parts) -> int:
    """A read descriptor of the regular file `parts` (not a symlink, not a directory)."""
    path = join(parts)
    with opened_parent(root_fd, parts) as parent:
        try:
            fd = os.open(parts[-1], FILE_FLAGS, dir_fd=parent)
        except OSError as exc:
            if exc.errno == errno.ELOOP:
                raise type_mismatch(path, "is a symlink (not followed)") from None
            raise fs_error(exc, path) from None
    info = os.fstat(fd)
    if not stat.S_ISREG(info.st_mode):
        os.close(fd)
        raise type_mismatch(path, "is not a regular file")
    return fd


def tree_usage(root_fd: int) -> tuple[int, int]:
    """(files, bytes) of the regular files under a directory, symlinks not followed."""
    files = size = 0
    for _, _, names, dir_fd in os.fwalk(".", dir_fd=root_fd, follow_symlinks=False):
        for name in names:
            info = lstat(dir_fd, name)
            if info is not None and stat.S_ISREG(info.st_mode):
                files += 1
                size += info.st_size
    return files, size


def path_usage(path: Path) -> tuple[int, int]:
    """tree_usage of a directory by path; (0, 0) when it is missing."""
    try:
        fd = os.open(path, DIR_FLAGS)
    except FileNotFoundError:
        return 0, 0
    try:
        return tree_usage(fd)
    finally:
        os.close(fd)
