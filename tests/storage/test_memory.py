"""The proxy caps glibc's malloc arenas before its worker threads start."""

from __future__ import annotations

import platform

import pytest

from bai.storage.memory import limit_malloc_arenas


@pytest.mark.skipif(platform.libc_ver()[0] != "glibc", reason="mallopt is glibc's")
def test_arenas_are_capped_on_glibc() -> None:
    assert limit_malloc_arenas(2) is True
