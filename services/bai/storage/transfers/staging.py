"""Partial uploads in a volume's hidden staging directory.

Each unfinished upload is `<key>.part` (the bytes committed so far) and
`<key>.json` (its header), where the key is a digest of folder and path,
so a resumed upload (from any proxy process, after a crash) finds them.
The .part file is flock()ed while an upload writes it: one writer per file,
and the lock dies with the process.
"""

from __future__ import annotations

import contextlib
import errno
import fcntl
import hashlib
import json
import os
import time
from dataclasses import asdict, dataclass
from pathlib import Path

from bai.common.errors import Aborted
from bai.storage.paths import Parts, join
from bai.storage.quota import VFolderId


@dataclass(frozen=True)
class UploadHeader:
    vfid: str
    relpath: str
    total_size: int
    sha256: str
    mode: int


def staging_key(vf: VFolderId, parts: Parts) -> str:
    return hashlib.sha256(f"{vf.vfid}\x00{join(parts)}".encode()).hexdigest()


class Staging:
    def __init__(self, directory: Path) -> None:
        self.directory = directory

    def part_path(self, key: str) -> Path:
        return self.directory / f"{key}.part"

    def header_path(self, key: str) -> Path:
        return self.directory / f"{key}.json"

    def read_header(self, key: str) -> UploadHeader | None:
        try:
            return UploadHeader(**json.loads(self.header_path(key).read_text()))
        except (FileNotFoundError, ValueError, TypeError):
            return None

    def write_header(self, key: str, header: UploadHeader) -> None:
        tmp = self.directory / f"{key}.json.tmp"
        tmp.write_text(json.dumps(asdict(header)))
        tmp.replace(self.header_path(key))

    def committed(self, key: str) -> int | None:
        """Bytes of the partial upload, or None when there is none."""
        if self.read_header(key) is None:
            return None
        try:
            return self.part_path(key).stat().st_size
        except FileNotFoundError:
            return 0

    def open_locked(self, key: str) -> int:
        """The .part file, opened for writing and exclusively locked."""
        fd = os.open(self.part_path(key), os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o600)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError as exc:
            os.close(fd)
            if exc.errno in (errno.EWOULDBLOCK, errno.EAGAIN):
                raise Aborted(
                    "another upload of this file is running", reason="CONCURRENT_UPDATE"
                ) from None
            raise
        return fd

    def discard(self, key: str) -> None:
        self.header_path(key).unlink(missing_ok=True)
        self.part_path(key).unlink(missing_ok=True)

    def pending_bytes(self, scope_name: str, exclude: str) -> int:
        """Bytes declared by other unfinished uploads into folders of one quota scope."""
        total = 0
        for path in self.directory.glob("*.json"):
            key = path.name.removesuffix(".json")
            header = self.read_header(key)
            if key != exclude and header is not None:
                if header.vfid.rpartition("/")[0] == scope_name:
                    total += header.total_size
        return total

    def sweep(self, max_age_seconds: float, now: float | None = None) -> list[str]:
        """Remove partial uploads untouched for `max_age_seconds` (unless one is writing)."""
        cutoff = (time.time() if now is None else now) - max_age_seconds
        removed = []
        for part in self.directory.glob("*.part"):
            key = part.name.removesuffix(".part")
            with contextlib.suppress(FileNotFoundError):
                if part.stat().st_mtime >= cutoff:
                    continue
                try:
                    fd = self.open_locked(key)
                except Aborted:
                    continue
                try:
                    self.discard(key)
                finally:
                    os.close(fd)
                removed.append(key)
        for orphan in self.directory.glob("*.json"):
            key = orphan.name.removesuffix(".json")
            with contextlib.suppress(FileNotFoundError):
                if not self.part_path(key).exists() and orphan.stat().st_mtime < cutoff:
                    orphan.unlink()
        return removed
