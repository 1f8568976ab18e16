"""Checks of folder-relative paths and folder names, before anything reaches a proxy.

The storage proxy checks paths again against the file system (symlinks); this
refuses what is never a path inside a folder, so that such a request costs
no round trip and reads the same on every backend.
"""

from __future__ import annotations

import re

from bai.manager.validation import Violations

# Names starting with "." are dot-folders (auto-mounted); "." and ".." are not names.
FOLDER_NAME = re.compile(r"^(?!\.{1,2}$)[A-Za-z0-9._-]{1,64}$")
MAX_PATH_BYTES = 4096
MAX_COMPONENT_BYTES = 255


def folder_name(v: Violations, field: str, value: str) -> None:
    if not FOLDER_NAME.match(value):
        v.add(field, "must be 1-64 characters of [A-Za-z0-9._-], other than '.' and '..'")


def relpath(v: Violations, field: str, value: str, *, root_ok: bool) -> str:
    """A "/"-separated path inside the folder; "" is the root when `root_ok`."""
    if value == "":
        if not root_ok:
            v.add(field, "is required")
        return ""
    problem = _path_problem(value)
    if problem:
        v.add(field, problem)
    return value.rstrip("/")


def _path_problem(value: str) -> str:
    if len(value.encode()) > MAX_PATH_BYTES:
        return f"must be at most {MAX_PATH_BYTES} bytes"
    if "\x00" in value or "\\" in value:
        return "must not contain NUL characters or backslashes"
    if value.startswith("/"):
        return "must be relative to the folder root"
    for part in value.rstrip("/").split("/"):
        if part in ("", ".", ".."):
            return "must not contain empty, '.' or '..' components"
        if len(part.encode()) > MAX_COMPONENT_BYTES:
            return f"must not have a component over {MAX_COMPONENT_BYTES} bytes"
        if not part.isprintable():
            return "must not contain control characters"
    return ""


def relpaths(v: Violations, field: str, values: list[str], limit: int) -> list[str]:
    if not 1 <= len(values) <= limit:
        v.add(field, f"name 1-{limit} paths")
    return [relpath(v, f"{field}[{i}]", p, root_ok=False) for i, p in enumerate(values)]
