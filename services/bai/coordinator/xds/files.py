"""Filesystem xDS: each worker's listeners and clusters as files Envoy watches.

Envoy reloads a file when it is moved into the watched directory, so each
file is written beside it and renamed over it (atomic: Envoy never reads a
half-written file). Clusters go first, so that new listeners find theirs.
"""

from __future__ import annotations

import json
import os
import re
import tempfile
from pathlib import Path
from typing import Any

LDS_FILE = "lds.json"
CDS_FILE = "cds.json"


def worker_directory(root: Path, authority: str) -> Path:
    """One directory per worker; the authority made safe as a file name."""
    return root / re.sub(r"[^A-Za-z0-9._-]", "_", authority)


def discovery_response(resources: list[dict[str, Any]]) -> str:
    return json.dumps({"resources": resources}, sort_keys=True, separators=(",", ":")) + "\n"


def replace_file(path: Path, content: str) -> bool:
    """Write `content` to `path` by rename; False (and no event for Envoy) when unchanged."""
    try:
        if path.read_text() == content:
            return False
    except FileNotFoundError:
        pass
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", dir=path.parent)
    try:
        with os.fdopen(fd, "w") as out:
            out.write(content)
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    return True


def write_worker_files(
    directory: Path, listeners: list[dict[str, Any]], clusters: list[dict[str, Any]]
) -> bool:
    """Bring the worker's two files up to date; True when either changed."""
    directory.mkdir(parents=True, exist_ok=True)
    changed = replace_file(directory / CDS_FILE, discovery_response(clusters))
    return replace_file(directory / LDS_FILE, discovery_response(listeners)) or changed


def ensure_worker_files(directory: Path) -> None:
    """Empty resource files, so that an Envoy can start before any circuit exists."""
    directory.mkdir(parents=True, exist_ok=True)
    for name in (CDS_FILE, LDS_FILE):
        if not (directory / name).exists():
            replace_file(directory / name, discovery_response([]))
