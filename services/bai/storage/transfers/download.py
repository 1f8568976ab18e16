"""Reading a file, or a byte range of it, in chunks (never whole in memory)."""

from __future__ import annotations

import os
from collections.abc import Iterator

from bai.common.errors import InvalidArgument
from bai.storage.paths import Parts
from bai.storage.quota import VFolderId
from bai.storage.volumes.safe_fs import open_regular_file, opened_root
from bai.storage.volumes.vfs import VfsVolume

CHUNK_BYTES = 1 << 20


def byte_range(size: int, offset: int, length: int) -> tuple[int, int]:
    """[start, end) of a request for `length` bytes (0: to the end) from `offset`."""
    if offset < 0:
        raise InvalidArgument.field("offset", "must be >= 0")
    if length < 0:
        raise InvalidArgument.field("length", "must be >= 0 (0: to the end)")
    if offset > size:
        raise InvalidArgument.field("offset", f"is beyond the end ({size} bytes)")
    end = size if length == 0 else offset + length
    if end > size:
        raise InvalidArgument.field("length", f"goes beyond the end ({size} bytes)")
    return offset, end


def open_file(volume: VfsVolume, vf: VFolderId, parts: Parts) -> tuple[int, int]:
    """(descriptor, size) of a regular file in a folder; the caller closes it."""
    with opened_root(volume.existing_folder(vf)) as root_fd:
        fd = open_regular_file(root_fd, parts)
    return fd, os.fstat(fd).st_size


def read_chunks(fd: int, start: int, end: int) -> Iterator[tuple[int, bytes]]:
    """(offset, bytes) chunks of [start, end) of an open file."""
    at = start
    while at < end:
        block = os.pread(fd, min(CHUNK_BYTES, end - at), at)
        if not block:
            return
        yield at, block
        at += len(block)
