"""Keypair request signing, shared by the manager (verifier) and the SDK (signer).

A signed call carries four metadata entries. The signature is the lowercase
hex HMAC-SHA256, keyed by the secret key, of

    "<full gRPC method>\\n<timestamp>\\n<nonce>"

where the full method looks like "/bai.api.manager.v1.AuthService/WhoAmI",
the timestamp is Unix seconds (or RFC 3339 UTC) and the nonce is 8-64
characters of [A-Za-z0-9_-], never reused.
"""

from __future__ import annotations

import hashlib
import hmac
import re
import secrets
import time
from datetime import datetime

ACCESS_KEY = "x-bai-access-key"
TIMESTAMP = "x-bai-timestamp"
NONCE = "x-bai-nonce"
SIGNATURE = "x-bai-signature"
AUTHORIZATION = "authorization"

NONCE_PATTERN = re.compile(r"^[A-Za-z0-9_-]{8,64}$")
ACCESS_KEY_PATTERN = re.compile(r"^[A-Z0-9]{16,32}$")


def string_to_sign(method: str, timestamp: str, nonce: str) -> bytes:
    return f"{method}\n{timestamp}\n{nonce}".encode()


def sign(secret_key: str, method: str, timestamp: str, nonce: str) -> str:
    return hmac.new(
        secret_key.encode(), string_to_sign(method, timestamp, nonce), hashlib.sha256
    ).hexdigest()


def signature_matches(secret_key: str, method: str, timestamp: str, nonce: str, sig: str) -> bool:
    return hmac.compare_digest(sign(secret_key, method, timestamp, nonce), sig.lower())


def parse_timestamp(value: str) -> float:
    """Unix seconds or RFC 3339; raises ValueError on anything else."""
    if re.fullmatch(r"\d{1,12}(\.\d{1,9})?", value):
        return float(value)
    parsed = datetime.fromisoformat(value.replace("Z", "+00:00"))
    if parsed.tzinfo is None:
        raise ValueError("timestamp needs a time zone")
    return parsed.timestamp()


def signed_metadata(
    access_key: str, secret_key: str, method: str, *, now: float | None = None
) -> list[tuple[str, str]]:
    """The metadata a client sends to call `method` with this keypair."""
    timestamp = str(int(time.time() if now is None else now))
    nonce = secrets.token_urlsafe(18)
    return [
        (ACCESS_KEY, access_key),
        (TIMESTAMP, timestamp),
        (NONCE, nonce),
        (SIGNATURE, sign(secret_key, method, timestamp, nonce)),
    ]


def new_keypair() -> tuple[str, str]:
    """A fresh (access key, secret key) pair in Backend.AI's shapes."""
    alphabet = "ABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789"
    access = "AKIA" + "".join(secrets.choice(alphabet) for _ in range(16))
    secret = secrets.token_urlsafe(30)[:40]
    return access, secret
