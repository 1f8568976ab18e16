"""Relative paths inside a folder: validation only, no file-system access.

Clients and the manager name files by "/"-separated paths relative to a
folder (or a token's path). A path is split into checked parts here; the
file system is then walked one part at a time without following symlinks
(bai.storage.volumes.safe_fs), so a valid path can still never leave its
folder.
"""

from __future__ import annotations

from bai.common.errors import FieldViolation, InvalidArgument

MAX_PART_BYTES = 255
MAX_PATH_BYTES = 4096

Parts = tuple[str, ...]


def path_problem(raw: str) -> str | None:
    """Why `raw` is not an acceptable relative path, or None."""
    if "\x00" in raw:
        return "must not contain NUL bytes"
    if "\\" in raw:
        return "must not contain backslashes"
    if raw.startswith("/"):
        return "must be relative (no leading '/')"
    if len(raw.encode("utf-8", errors="surrogatepass")) > MAX_PATH_BYTES:
        return f"must be at most {MAX_PATH_BYTES} bytes"
    for part in raw.split("/"):
        if part == "..":
            return "must not contain '..'"
        if len(part.encode("utf-8", errors="surrogatepass")) > MAX_PART_BYTES:
            return f"each name must be at most {MAX_PART_BYTES} bytes"
    return None


def escapes(raw: str) -> bool:
    """Whether `raw` tries to leave its base (absolute or with a '..' part)."""
    return raw.startswith("/") or ".." in raw.split("/")


def split_relpath(raw: str, field: str) -> Parts:
    """The checked parts of `raw` ("" and "." are the base itself)."""
    problem = path_problem(raw)
    if problem is not None:
        raise InvalidArgument([FieldViolation(field, problem)])
    return tuple(part for part in raw.split("/") if part not in ("", "."))


def split_name(raw: str, field: str) -> str:
    """One base name (no '/'), e.g. a rename's new name."""
    parts = split_relpath(raw, field)
    if "/" in raw or len(parts) != 1:
        raise InvalidArgument.field(field, "must be one name without '/'")
    return parts[0]


def join(parts: Parts) -> str:
    return "/".join(parts)


def is_within(base: Parts, path: Parts) -> bool:
    return path[: len(base)] == base
