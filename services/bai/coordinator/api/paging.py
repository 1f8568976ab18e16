"""One page of an ordered list, continuing after the key in the page token.

`key` must grow with the list order (it is compared, not looked up).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any, TypeVar

from bai.common.errors import InvalidArgument
from bai.manager.paging import decode_token, encode_token

T = TypeVar("T")


def page_of(
    items: Sequence[T], key: Callable[[T], str], page_size: int, page_token: str, query: Any
) -> tuple[list[T], str]:
    if not 0 <= page_size <= 1000:
        raise InvalidArgument.field("page_size", "must be 0-1000")
    size = page_size or 100
    after = decode_token(page_token, query)
    start = 0
    if after is not None:
        # Keys grow with the list order, so a deleted last item is no problem.
        start = next((i for i, item in enumerate(items) if key(item) > after), len(items))
    chosen = list(items[start : start + size])
    more = start + size < len(items)
    return chosen, encode_token(key(chosen[-1]), query) if more and chosen else ""
