"""Transfer tokens: HS256 JWTs scoped to one operation on one path of one folder.

Claims: op, volume, vfid ("<quota scope>/<folder id>"), relpath, sub,
max_size, iat, exp, jti. Every proxy of a cluster shares the secret, so a
token issued by one is honoured by all.
"""

from __future__ import annotations

import secrets
import time
from dataclasses import dataclass
from typing import Literal

import jwt

from bai.common.errors import InvalidArgument, PermissionDenied, Unauthenticated
from bai.storage.paths import Parts, escapes, join, split_relpath

Op = Literal["upload", "download", "archive-download"]
OPS: tuple[Op, ...] = ("upload", "download", "archive-download")
ALGORITHM = "HS256"
DEFAULT_TTL_SECONDS = 3600
MAX_TTL_SECONDS = 24 * 3600
REQUIRED_CLAIMS = ["op", "volume", "vfid", "relpath", "exp", "iat", "jti"]


@dataclass(frozen=True)
class TransferClaims:
    op: Op
    volume: str
    vfid: str
    relpath: str
    sub: str = ""
    max_size: int = 0
    iat: int = 0
    exp: int = 0
    jti: str = ""


def issue(
    secret: str, claims: TransferClaims, ttl_seconds: float, now: float | None = None
) -> tuple[str, TransferClaims]:
    """Sign a token for `claims` (iat, exp and jti filled in)."""
    if ttl_seconds <= 0 or ttl_seconds > MAX_TTL_SECONDS:
        raise InvalidArgument.field("ttl", f"must be positive and at most {MAX_TTL_SECONDS} s")
    issued = int(now if now is not None else time.time())
    full = TransferClaims(
        op=claims.op,
        volume=claims.volume,
        vfid=claims.vfid,
        relpath=claims.relpath,
        sub=claims.sub,
        max_size=claims.max_size,
        iat=issued,
        exp=issued + int(ttl_seconds),
        jti=secrets.token_hex(16),
    )
    return jwt.encode(vars(full), secret, algorithm=ALGORITHM), full


def _invalid(why: str) -> Unauthenticated:
    return Unauthenticated(f"transfer token {why}", reason="TRANSFER_TOKEN_INVALID")


def verify(secret: str, token: str) -> TransferClaims:
    """The claims of a well-signed, unexpired token, else TRANSFER_TOKEN_INVALID."""
    if not token:
        raise _invalid("is missing")
    try:
        raw = jwt.decode(
            token, secret, algorithms=[ALGORITHM], options={"require": REQUIRED_CLAIMS}
        )
    except jwt.ExpiredSignatureError:
        raise _invalid("has expired") from None
    except jwt.InvalidTokenError as exc:
        raise _invalid(f"is invalid: {exc}") from None
    if raw["op"] not in OPS:
        raise _invalid("names an unknown operation")
    fields = {k: raw[k] for k in TransferClaims.__dataclass_fields__ if k in raw}
    return TransferClaims(**fields)


def bearer(metadata: dict[str, str], field_value: str) -> str:
    """The token from the request field, else from "authorization: Bearer ..."."""
    if field_value:
        return field_value
    header = metadata.get("authorization", "")
    scheme, _, value = header.partition(" ")
    return value.strip() if scheme.lower() == "bearer" else ""


def check_op(claims: TransferClaims, allowed: tuple[Op, ...]) -> None:
    if claims.op not in allowed:
        raise PermissionDenied(
            f"a {claims.op} token does not allow this call",
            reason="TRANSFER_SCOPE_VIOLATION",
        )


def scoped_path(claims: TransferClaims, raw: str) -> Parts:
    """The folder-relative parts of `raw`, a path under the token's relpath."""
    if escapes(raw):
        raise PermissionDenied(
            f"path {raw!r} leaves the token's path", reason="TRANSFER_SCOPE_VIOLATION"
        )
    base = split_relpath(claims.relpath, "token.relpath")
    return (*base, *split_relpath(raw, "path"))


__all__ = ["OPS", "Op", "TransferClaims", "bearer", "check_op", "issue", "join", "verify"]
