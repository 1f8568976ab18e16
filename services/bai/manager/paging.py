"""Opaque page tokens: the last key of the previous page, bound to the query."""

from __future__ import annotations

import base64
import hashlib
import json
from typing import Any

from bai.common.errors import FieldViolation, InvalidArgument


def _digest(query: Any) -> str:
    return hashlib.sha256(json.dumps(query, sort_keys=True, default=str).encode()).hexdigest()[:16]


def _bad(description: str) -> InvalidArgument:
    return InvalidArgument([FieldViolation("page_token", description)], reason="INVALID_PAGE_TOKEN")


def encode_token(last_key: str, query: Any) -> str:
    payload = json.dumps({"k": last_key, "q": _digest(query)}).encode()
    return base64.urlsafe_b64encode(payload).decode().rstrip("=")


def decode_token(token: str, query: Any) -> str | None:
    """The last key to continue after, or None for the first page."""
    if not token:
        return None
    try:
        padded = token + "=" * (-len(token) % 4)
        payload = json.loads(base64.urlsafe_b64decode(padded.encode()))
        key, digest = payload["k"], payload["q"]
    except (ValueError, KeyError, TypeError) as exc:
        raise _bad("is not a token from this list") from exc
    if not isinstance(key, str) or digest != _digest(query):
        raise _bad("was issued for a different query")
    return key
