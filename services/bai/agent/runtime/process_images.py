"""Images of the process runtime: rootfs directories built on this node.

An image named N is the directory `<rootfs_dir>/N/` (the sandbox's `/`) with
its metadata in `<rootfs_dir>/N.labels.json` (or `<rootfs_dir>/N/labels.json`).
A directory without metadata is not an image (it may be half built). The
metadata is either a flat {label: value} object or an object with "labels"
(and optionally "env": ["K=V", ...], "ref", "tags", "architecture",
"created_at"). A reference such as `bai.local/stable/python:3.11` names the
directory `bai.local_stable_python_3.11` (`rootfs_name`), or any image whose
metadata lists it under "ref"/"tags".
"""

from __future__ import annotations

import json
import os
import platform
import re
import shutil
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from bai.agent.runtime.base import ImageInfo

_UNSAFE = re.compile(r"[^A-Za-z0-9._-]")
# Backend.AI's architecture names (as the Docker runtime reports them), by machine.
_MACHINE_TO_ARCH = {"amd64": "x86_64", "arm64": "aarch64"}


def rootfs_name(ref: str) -> str:
    """The directory name of an image reference: anything but [A-Za-z0-9._-] becomes '_'."""
    return _UNSAFE.sub("_", ref)


def host_architecture() -> str:
    machine = platform.machine()
    return _MACHINE_TO_ARCH.get(machine, machine)


@dataclass(frozen=True)
class RootfsImage:
    name: str
    rootfs: Path
    metadata_file: Path
    metadata: dict[str, Any]

    @property
    def labels(self) -> dict[str, str]:
        raw = self.metadata.get("labels")
        if isinstance(raw, dict):
            return {str(k): str(v) for k, v in raw.items()}
        return {k: v for k, v in self.metadata.items() if isinstance(v, str)}

    @property
    def env(self) -> dict[str, str]:
        """The image's environment ("env": ["K=V", ...] as in a Docker image config)."""
        raw = self.metadata.get("env")
        if not isinstance(raw, list) or "labels" not in self.metadata:
            return {}
        return dict(item.split("=", 1) for item in raw if isinstance(item, str) and "=" in item)

    @property
    def refs(self) -> list[str]:
        if "labels" not in self.metadata:
            return [self.name]
        refs = [self.metadata.get("ref"), *self.metadata.get("tags", [])]
        return [self.name, *(r for r in refs if isinstance(r, str) and r)]


def _directory_size(path: Path) -> int:
    total = 0
    for root, _dirs, files in os.walk(path):
        for name in files:
            try:
                total += os.lstat(os.path.join(root, name)).st_size
            except OSError:
                continue
    return total


class RootfsImageStore:
    """Reads and removes the rootfs images under one directory. Blocking: call it from
    a worker thread."""

    def __init__(self, rootfs_dir: Path) -> None:
        self.rootfs_dir = rootfs_dir.absolute()
        # Sizes are costly (a walk of the tree); keep them until the metadata changes.
        self._sizes: dict[tuple[str, int], int] = {}

    def _load(self, name: str) -> RootfsImage | None:
        rootfs = self.rootfs_dir / name
        if not rootfs.is_dir():
            return None
        for metadata_file in (self.rootfs_dir / f"{name}.labels.json", rootfs / "labels.json"):
            try:
                metadata = json.loads(metadata_file.read_text())
            except (OSError, ValueError):
                continue
            if isinstance(metadata, dict):
                return RootfsImage(name, rootfs, metadata_file, metadata)
        return None

    def all(self) -> list[RootfsImage]:
        if not self.rootfs_dir.is_dir():
            return []
        found = (self._load(entry.name) for entry in sorted(self.rootfs_dir.iterdir()))
        return [image for image in found if image is not None]

    def find(self, ref: str) -> RootfsImage | None:
        for name in (ref, rootfs_name(ref)):
            if "/" not in name and name not in ("", ".", ".."):
                image = self._load(name)
                if image is not None:
                    return image
        return next((image for image in self.all() if ref in image.refs), None)

    def info(self, image: RootfsImage) -> ImageInfo:
        mtime_ns = image.metadata_file.stat().st_mtime_ns
        key = (image.name, mtime_ns)
        if key not in self._sizes:
            self._sizes[key] = _directory_size(image.rootfs)
        created_at = _parse_time(image.metadata.get("created_at")) or datetime.fromtimestamp(
            mtime_ns / 1e9, UTC
        )
        architecture = image.metadata.get("architecture")
        return ImageInfo(
            ref=image.refs[1] if len(image.refs) > 1 else image.name,
            digest="",
            size_bytes=self._sizes[key],
            labels=image.labels,
            architecture=architecture if isinstance(architecture, str) else host_architecture(),
            created_at=created_at,
            tags=image.refs,
            # Rootfs trees are built on the node; no registry serves them.
            is_local=True,
        )

    def remove(self, image: RootfsImage) -> None:
        # Metadata first: a half-removed tree is no longer listed as an image.
        image.metadata_file.unlink(missing_ok=True)
        shutil.rmtree(image.rootfs)


def _parse_time(value: object) -> datetime | None:
    if not isinstance(value, str):
        return None
    try:
        return datetime.fromisoformat(value)
    except ValueError:
        return None
