"""File operations on one folder of one volume, as blocking calls the servicers run in threads."""

from __future__ import annotations

from bai.common.errors import InvalidArgument
from bai.storage.listing import Entry, cut_page, page_size, read_page_token
from bai.storage.paths import Parts, join, split_name, split_relpath
from bai.storage.quota import VFolderId, check_not_full
from bai.storage.volumes import files
from bai.storage.volumes.safe_fs import opened_dir, opened_root
from bai.storage.volumes.vfs import VfsVolume

MAX_MKDIR_PATHS = 100


def mkdir(
    volume: VfsVolume, vf: VFolderId, relpaths: list[str], *, parents: bool, exist_ok: bool
) -> None:
    if not relpaths or len(relpaths) > MAX_MKDIR_PATHS:
        raise InvalidArgument.field("relpaths", f"must hold 1-{MAX_MKDIR_PATHS} paths")
    all_parts = [split_relpath(p, f"relpaths[{i}]") for i, p in enumerate(relpaths)]
    if any(not parts for parts in all_parts):
        raise InvalidArgument.field("relpaths", "must not name the folder root")
    check_not_full(vf.scope, volume.scope_limit(vf.scope), volume.scope_used(vf.scope))
    with opened_root(volume.existing_folder(vf)) as root_fd:
        for parts in all_parts:
            files.mkdir(root_fd, parts, parents=parents, exist_ok=exist_ok)


def list_page(
    volume: VfsVolume,
    vf: VFolderId,
    parts: Parts,
    base: Parts,
    requested_size: int,
    token: str,
) -> tuple[list[Entry], str]:
    """One name-ordered page of directory `parts`; entry paths relative to `base`."""
    size = page_size(requested_size)
    after = read_page_token(join(parts), token)
    with opened_root(volume.existing_folder(vf)) as root_fd:
        names = files.list_names(root_fd, parts)
        page, next_token = cut_page(names, join(parts), after, size)
        return files.entries(root_fd, parts, page, base), next_token


def rename(volume: VfsVolume, vf: VFolderId, relpath: str, new_name: str) -> None:
    parts = split_relpath(relpath, "relpath")
    name = split_name(new_name, "new_name")
    with opened_root(volume.existing_folder(vf)) as root_fd:
        files.rename(root_fd, parts, name)


def move(volume: VfsVolume, vf: VFolderId, source: str, target: str, *, overwrite: bool) -> None:
    src = split_relpath(source, "source_relpath")
    dst = split_relpath(target, "target_relpath")
    if not src or not dst:
        raise InvalidArgument.field("relpath", "must not name the folder root")
    with opened_root(volume.existing_folder(vf)) as root_fd:
        files.move(root_fd, src, dst, overwrite=overwrite)


def checked_deletions(relpaths: list[str]) -> list[Parts]:
    all_parts = [split_relpath(p, f"relpaths[{i}]") for i, p in enumerate(relpaths)]
    if not all_parts or any(not parts for parts in all_parts):
        raise InvalidArgument.field("relpaths", "must name entries, not the folder root")
    return all_parts


def delete(volume: VfsVolume, vf: VFolderId, all_parts: list[Parts], *, recursive: bool) -> None:
    with opened_root(volume.existing_folder(vf)) as root_fd:
        for parts in all_parts:
            files.delete(root_fd, parts, recursive=recursive)


def check_exists(volume: VfsVolume, vf: VFolderId, parts: Parts, *, directory: bool) -> None:
    """NOT_FOUND unless `parts` exists (as a directory when `directory`)."""
    with opened_root(volume.existing_folder(vf)) as root_fd:
        if directory:
            with opened_dir(root_fd, parts):
                return
        files.stat_entry(root_fd, parts)
