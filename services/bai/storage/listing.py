"""Directory entries and their pages (pure).

Pages are cut from the name-sorted entries; a page token carries the last
name sent and a digest of the listed directory, so a token from another
listing answers INVALID_PAGE_TOKEN.
"""

from __future__ import annotations

import base64
import hashlib
import json
from dataclasses import dataclass
from typing import Literal

from bai.common.errors import FieldViolation, InvalidArgument

EntryType = Literal["file", "directory", "symlink", "other"]
DEFAULT_PAGE_SIZE = 1000
MAX_PAGE_SIZE = 10_000


@dataclass(frozen=True)
class Entry:
    name: str
    # Relative to the listing's root ("/"-separated).
    path: str
    type: EntryType
    size: int
    mode: int
    modified_at: float
    created_at: float
    symlink_target: str = ""


def page_size(requested: int) -> int:
    if requested == 0:
        return DEFAULT_PAGE_SIZE
    if not 1 <= requested <= MAX_PAGE_SIZE:
        raise InvalidArgument.field("page_size", f"must be 1-{MAX_PAGE_SIZE} (0: default)")
    return requested


def _digest(directory: str) -> str:
    return hashlib.sha256(directory.encode("utf-8", errors="surrogatepass")).hexdigest()[:16]


def make_page_token(directory: str, last_name: str) -> str:
    raw = json.dumps({"d": _digest(directory), "a": last_name}).encode()
    return base64.urlsafe_b64encode(raw).decode()


def read_page_token(directory: str, token: str) -> str | None:
    """The name to list after, or None for the first page."""
    if not token:
        return None
    try:
        data = json.loads(base64.urlsafe_b64decode(token.encode()))
        after = data["a"]
        ok = data["d"] == _digest(directory) and isinstance(after, str)
    except (ValueError, KeyError, TypeError):
        ok = False
    if not ok:
        raise InvalidArgument(
            [FieldViolation("page_token", "was not issued for this listing")],
            reason="INVALID_PAGE_TOKEN",
        )
    return str(after)


def cut_page(
    names: list[str], directory: str, after: str | None, size: int
) -> tuple[list[str], str]:
    """The sorted names of one page and the next page's token ("" when done)."""
    ordered = sorted(names)
    if after is not None:
        ordered = [n for n in ordered if n > after]
    page = ordered[:size]
    more = len(ordered) > size
    return page, make_page_token(directory, page[-1]) if more and page else ""
