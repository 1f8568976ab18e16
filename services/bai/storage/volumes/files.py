"""File operations inside one folder, each walked through safe_fs (no symlink followed)."""

from __future__ import annotations

import errno
import os
import shutil
import stat

from bai.common.errors import AlreadyExists, InvalidArgument, NotFound
from bai.storage.listing import Entry, EntryType
from bai.storage.paths import Parts, join
from bai.storage.volumes.safe_fs import fs_error, lstat, opened_dir, opened_parent, type_mismatch


def entry_type(mode: int) -> EntryType:
    if stat.S_ISREG(mode):
        return "file"
    if stat.S_ISDIR(mode):
        return "directory"
    if stat.S_ISLNK(mode):
        return "symlink"
    return "other"


def entry_of(dir_fd: int, name: str, path: str, info: os.stat_result) -> Entry:
    kind = entry_type(info.st_mode)
    target = os.readlink(name, dir_fd=dir_fd) if kind == "symlink" else ""
    return Entry(
        name=name,
        path=path,
        type=kind,
        size=info.st_size if kind == "file" else 0,
        mode=stat.S_IMODE(info.st_mode),
        modified_at=info.st_mtime,
        created_at=info.st_ctime,
        symlink_target=target,
    )


def mkdir(root_fd: int, parts: Parts, *, parents: bool, exist_ok: bool) -> None:
    path = join(parts)
    with opened_parent(root_fd, parts, create=parents) as parent:
        try:
            os.mkdir(parts[-1], 0o755, dir_fd=parent)
        except FileExistsError:
            info = lstat(parent, parts[-1])
            if info is not None and not stat.S_ISDIR(info.st_mode):
                raise type_mismatch(path, "exists and is not a directory") from None
            if not exist_ok:
                raise AlreadyExists(f"{path} already exists") from None
        except OSError as exc:
            raise fs_error(exc, path) from None


def list_names(root_fd: int, parts: Parts) -> list[str]:
    with opened_dir(root_fd, parts) as fd:
        return os.listdir(fd)


def entries(root_fd: int, parts: Parts, names: list[str], base: Parts) -> list[Entry]:
    """Entries for `names` in directory `parts`; paths relative to `base`."""
    prefix = join(parts[len(base) :])
    out = []
    with opened_dir(root_fd, parts) as fd:
        for name in names:
            info = lstat(fd, name)
            if info is not None:
                out.append(entry_of(fd, name, f"{prefix}/{name}" if prefix else name, info))
    return out


def rename(root_fd: int, parts: Parts, new_name: str) -> None:
    path = join(parts)
    with opened_parent(root_fd, parts) as parent:
        if lstat(parent, parts[-1]) is None:
            raise NotFound(f"{path} does not exist")
        if lstat(parent, new_name) is not None:
            raise AlreadyExists(f"{new_name} already exists next to {path}")
        try:
            os.rename(parts[-1], new_name, src_dir_fd=parent, dst_dir_fd=parent)
        except OSError as exc:
            raise fs_error(exc, path) from None


def move(root_fd: int, source: Parts, target: Parts, *, overwrite: bool) -> None:
    if target[: len(source)] == source:
        raise InvalidArgument.field("target_relpath", "must not be inside the source")
    with opened_parent(root_fd, source) as src, opened_parent(root_fd, target) as dst:
        info = lstat(src, source[-1])
        if info is None:
            raise NotFound(f"{join(source)} does not exist")
        existing = lstat(dst, target[-1])
        if existing is not None:
            if not overwrite:
                raise AlreadyExists(f"{join(target)} already exists")
            if stat.S_ISDIR(existing.st_mode) != stat.S_ISDIR(info.st_mode):
                raise type_mismatch(join(target), "exists and is of another type")
        try:
            os.rename(source[-1], target[-1], src_dir_fd=src, dst_dir_fd=dst)
        except OSError as exc:
            raise fs_error(exc, join(target)) from None


def delete(root_fd: int, parts: Parts, *, recursive: bool) -> None:
    """Remove one entry; a missing one is skipped. Symlinks are removed, never followed."""
    path = join(parts)
    try:
        with opened_parent(root_fd, parts) as parent:
            info = lstat(parent, parts[-1])
            if info is None:
                return
            if not stat.S_ISDIR(info.st_mode):
                os.unlink(parts[-1], dir_fd=parent)
            elif recursive:
                shutil.rmtree(parts[-1], dir_fd=parent)
            else:
                os.rmdir(parts[-1], dir_fd=parent)
    except NotFound:
        return
    except OSError as exc:
        if exc.errno == errno.ENOENT:
            return
        raise fs_error(exc, path) from None


def stat_entry(root_fd: int, parts: Parts) -> os.stat_result:
    """lstat of `parts` (NOT_FOUND when missing)."""
    if not parts:
        return os.fstat(root_fd)
    with opened_parent(root_fd, parts) as parent:
        info = lstat(parent, parts[-1])
    if info is None:
        raise NotFound(f"{join(parts)} does not exist")
    return info
