"""App tokens (what IssueAppToken hands out) and circuit cookies (what a redeemed token becomes).

Both are HS256 JWTs. An app token carries id (circuit), sub (user), iat, exp
and a jti so that each is redeemable once. A cookie is signed with a key
derived from the app-token secret, so the Envoys that verify cookies (their
config holds that key) cannot mint app tokens.
"""

from __future__ import annotations

import hashlib
import hmac
import time
import uuid
from dataclasses import dataclass

import jwt

from bai.coordinator.xds.filters import COOKIE_ISSUER

ALGORITHM = "HS256"


class TokenRejected(Exception):
    """The token is malformed, badly signed, expired or not for this circuit."""


@dataclass(frozen=True)
class AppTokenClaims:
    circuit_id: str
    user_id: str
    jti: str
    expires_at: float


def cookie_key(app_token_secret: str) -> bytes:
    return hmac.new(app_token_secret.encode(), b"bai-app-cookie", hashlib.sha256).digest()


def issue_app_token(
    secret: str, circuit_id: str, user_id: str, ttl_seconds: float, now: float | None = None
) -> tuple[str, float]:
    issued = time.time() if now is None else now
    expires = issued + ttl_seconds
    claims = {
        "id": circuit_id,
        "sub": user_id,
        "iat": int(issued),
        "exp": int(expires),
        "jti": uuid.uuid4().hex,
    }
    return jwt.encode(claims, secret, algorithm=ALGORITHM), float(int(expires))


def verify_app_token(secret: str, token: str) -> AppTokenClaims:
    try:
        claims = jwt.decode(
            token,
            secret,
            algorithms=[ALGORITHM],
            options={"require": ["id", "sub", "exp", "jti"]},
        )
    except jwt.PyJWTError as exc:
        raise TokenRejected(str(exc)) from exc
    return AppTokenClaims(
        circuit_id=str(claims["id"]),
        user_id=str(claims["sub"]),
        jti=str(claims["jti"]),
        expires_at=float(claims["exp"]),
    )


def issue_cookie(key: bytes, circuit_id: str, user_id: str, ttl_seconds: int) -> str:
    now = int(time.time())
    claims = {
        "iss": COOKIE_ISSUER,
        "aud": circuit_id,
        "sub": user_id,
        "iat": now,
        "exp": now + ttl_seconds,
    }
    return jwt.encode(claims, key, algorithm=ALGORITHM)


def cookie_valid(key: bytes, cookie: str, circuit_id: str) -> bool:
    try:
        jwt.decode(
            cookie,
            key,
            algorithms=[ALGORITHM],
            audience=circuit_id,
            issuer=COOKIE_ISSUER,
            options={"require": ["aud", "exp"]},
        )
    except jwt.PyJWTError:
        return False
    return True
