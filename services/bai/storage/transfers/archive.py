"""A directory as one zip stream, built while it is sent.

zipfile writes to an unseekable sink with data descriptors, so entries are
produced file by file and chunk by chunk; at most about one chunk is
buffered. Symlinks are skipped (never followed) and directories are walked
through descriptors, as everywhere in the proxy.
"""

from __future__ import annotations

import os
import stat
import time
import zipfile
from collections.abc import Generator, Iterator

from bai.storage.paths import Parts
from bai.storage.quota import VFolderId
from bai.storage.volumes.safe_fs import FILE_FLAGS, lstat, opened_dir, opened_root
from bai.storage.volumes.vfs import VfsVolume

CHUNK_BYTES = 1 << 20


class _Sink:
    """A write-only, unseekable file object whose bytes are drained after each write."""

    def __init__(self) -> None:
        self.buffer = bytearray()
        self.position = 0

    def write(self, data: bytes, /) -> int:
        self.buffer += data
        self.position += len(data)
        return len(data)

    def tell(self) -> int:
        return self.position

    def flush(self) -> None:
        return None

    def close(self) -> None:
        return None

    def drain(self) -> bytes:
        out = bytes(self.buffer)
        self.buffer.clear()
        return out


def _zip_time(mtime: float) -> tuple[int, int, int, int, int, int]:
    t = time.localtime(max(mtime, 315532800))  # zip cannot hold dates before 1980
    return (t.tm_year, t.tm_mon, t.tm_mday, t.tm_hour, t.tm_min, t.tm_sec)


def zip_chunks(root_fd: int, parts: Parts) -> Iterator[bytes]:
    """The zip of directory `parts` under root, as a sequence of byte chunks."""
    sink = _Sink()
    with opened_dir(root_fd, parts) as top, zipfile.ZipFile(sink, "w", zipfile.ZIP_STORED) as zf:
        walk = os.fwalk(".", dir_fd=top, follow_symlinks=False)
        for dirpath, dirnames, filenames, dir_fd in walk:
            dirnames.sort()
            prefix = "" if dirpath == "." else dirpath.removeprefix("./") + "/"
            for name in sorted(filenames):
                info = lstat(dir_fd, name)
                if info is None or not stat.S_ISREG(info.st_mode):
                    continue
                yield from _entry(zf, sink, dir_fd, name, prefix + name, info)
            if not filenames and not dirnames and prefix:
                zf.writestr(zipfile.ZipInfo(prefix, _zip_time(time.time())), b"")
                yield sink.drain()
    tail = sink.drain()
    if tail:
        yield tail


def _entry(
    zf: zipfile.ZipFile, sink: _Sink, dir_fd: int, name: str, arcname: str, info: os.stat_result
) -> Iterator[bytes]:
    try:
        fd = os.open(name, FILE_FLAGS, dir_fd=dir_fd)
    except OSError:
        return  # replaced by a symlink or removed since the walk saw it
    try:
        entry = zipfile.ZipInfo(arcname, _zip_time(info.st_mtime))
        entry.external_attr = (stat.S_IMODE(info.st_mode) | stat.S_IFREG) << 16
        with zf.open(entry, "w", force_zip64=True) as out:
            while block := os.read(fd, CHUNK_BYTES):
                out.write(block)
                yield sink.drain()
    finally:
        os.close(fd)
    yield sink.drain()


def folder_zip(volume: VfsVolume, vf: VFolderId, parts: Parts) -> Generator[bytes, None, None]:
    """zip_chunks of a directory of a folder, holding the folder open meanwhile."""
    with opened_root(volume.existing_folder(vf)) as root_fd:
        yield from zip_chunks(root_fd, parts)
