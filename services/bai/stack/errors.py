"""Errors raised by the local stack."""

from __future__ import annotations


class StackError(RuntimeError):
    """A component could not be installed, started, checked or stopped."""
