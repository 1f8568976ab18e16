"""The pure parts: relative paths, quota arithmetic, page tokens, byte ranges."""

from __future__ import annotations

import pytest

from bai.common.errors import InvalidArgument, ResourceExhausted
from bai.storage.http.ranges import Unsatisfiable, requested_span
from bai.storage.listing import cut_page, make_page_token, page_size, read_page_token
from bai.storage.paths import escapes, split_name, split_relpath
from bai.storage.quota import QuotaScopeId, VFolderId, check_fits, check_not_full, remaining
from bai.storage.transfers.download import byte_range

SCOPE = QuotaScopeId("user", "0" * 32)


@pytest.mark.parametrize(
    "raw",
    [
        "..",
        "../x",
        "a/../../b",
        "a/..",
        "/etc/passwd",
        "a\x00b",
        "a\\..\\b",
        "x" * 256,
        "a/" * 2100,
    ],
)
def test_bad_relpaths_are_refused(raw: str) -> None:
    with pytest.raises(InvalidArgument) as caught:
        split_relpath(raw, "relpath")
    assert caught.value.violations[0].field == "relpath"


def test_good_relpaths_split_into_parts() -> None:
    assert split_relpath("", "p") == ()
    assert split_relpath(".", "p") == ()
    assert split_relpath("a/./b//c/", "p") == ("a", "b", "c")
    assert split_relpath("..a/b..", "p") == ("..a", "b..")
    assert split_relpath("x" * 255, "p") == ("x" * 255,)


def test_escapes_and_names() -> None:
    assert escapes("../a") and escapes("/a") and escapes("a/../..")
    assert not escapes("a/b..") and not escapes("")
    assert split_name("new.txt", "new_name") == "new.txt"
    with pytest.raises(InvalidArgument):
        split_name("a/b", "new_name")
    with pytest.raises(InvalidArgument):
        split_name("", "new_name")


def test_quota_arithmetic() -> None:
    assert remaining(0, 10**12) is None
    assert remaining(100, 30) == 70
    assert remaining(100, 130) == 0
    check_fits(SCOPE, 100, 30, 70)
    check_fits(SCOPE, 0, 10**12, 10**12)
    with pytest.raises(ResourceExhausted) as caught:
        check_fits(SCOPE, 100, 30, 71)
    assert caught.value.reason == "STORAGE_QUOTA_EXCEEDED"
    assert caught.value.metadata == {"quota_scope": SCOPE.name, "limit": "100"}
    check_not_full(SCOPE, 100, 99)
    with pytest.raises(ResourceExhausted):
        check_not_full(SCOPE, 100, 100)


def test_scope_and_folder_ids_round_trip() -> None:
    scope = QuotaScopeId.parse("project:12345678-1234-5678-1234-567812345678")
    assert scope.dirname == "project-12345678123456781234567812345678"
    assert QuotaScopeId.parse(scope.name) == scope
    vf = VFolderId(scope, "ab" * 16)
    assert VFolderId.parse(vf.vfid) == vf
    for bad in ("group:1", "user:not-a-uuid", "user"):
        with pytest.raises(InvalidArgument):
            QuotaScopeId.parse(bad)


def test_pages_cut_in_name_order_and_tokens_are_bound_to_the_listing() -> None:
    names = ["c", "a", "b", "e", "d"]
    page, token = cut_page(names, "dir", None, 2)
    assert page == ["a", "b"]
    after = read_page_token("dir", token)
    page, token = cut_page(names, "dir", after, 2)
    assert page == ["c", "d"]
    page, token = cut_page(names, "dir", read_page_token("dir", token), 2)
    assert page == ["e"] and token == ""
    with pytest.raises(InvalidArgument) as caught:
        read_page_token("other", make_page_token("dir", "a"))
    assert caught.value.reason == "INVALID_PAGE_TOKEN"
    with pytest.raises(InvalidArgument):
        read_page_token("dir", "garbage!")
    assert page_size(0) == 1000
    with pytest.raises(InvalidArgument):
        page_size(10_001)


def test_byte_ranges() -> None:
    assert byte_range(10, 0, 0) == (0, 10)
    assert byte_range(10, 3, 4) == (3, 7)
    assert byte_range(10, 10, 0) == (10, 10)
    for offset, length in ((11, 0), (5, 6), (-1, 0), (0, -1)):
        with pytest.raises(InvalidArgument):
            byte_range(10, offset, length)


@pytest.mark.parametrize(
    ("header", "span"),
    [
        (None, None),
        ("bytes=0-9", (0, 10)),
        ("bytes=10-", (10, 100)),
        ("bytes=-5", (95, 100)),
        ("bytes=-500", (0, 100)),
        ("bytes=90-500", (90, 100)),
        ("bytes=0-1,5-6", None),  # several ranges: the whole file
        ("items=0-9", None),
        ("bytes=9-3", None),
        ("bytes=a-b", None),
    ],
)
def test_requested_span(header: str | None, span: tuple[int, int] | None) -> None:
    assert requested_span(header, 100) == span


@pytest.mark.parametrize("header", ["bytes=100-", "bytes=150-200", "bytes=-0"])
def test_unsatisfiable_span(header: str) -> None:
    with pytest.raises(Unsatisfiable):
        requested_span(header, 100)
