"""Transfer tokens: signing, expiry, tampering, operation and path scope."""

from __future__ import annotations

import time

import jwt
import pytest

from bai.common.errors import InvalidArgument, PermissionDenied, Unauthenticated
from bai.storage import tokens

SECRET = "s3cret-" + "x" * 32
CLAIMS = tokens.TransferClaims(
    op="download", volume="local", vfid="user:x/abc", relpath="data", sub="u-1"
)


def test_issued_token_verifies_with_its_claims() -> None:
    token, issued = tokens.issue(SECRET, CLAIMS, 60)
    claims = tokens.verify(SECRET, token)
    assert claims == issued
    assert claims.exp - claims.iat == 60 and len(claims.jti) == 32
    assert jwt.get_unverified_header(token)["alg"] == "HS256"


def test_each_token_is_new() -> None:
    assert tokens.issue(SECRET, CLAIMS, 60)[0] != tokens.issue(SECRET, CLAIMS, 60)[0]


@pytest.mark.parametrize("ttl", [0, -5, 24 * 3600 + 1])
def test_ttl_limits(ttl: float) -> None:
    with pytest.raises(InvalidArgument):
        tokens.issue(SECRET, CLAIMS, ttl)


def test_expired_badly_signed_tampered_and_unsigned_tokens_are_invalid() -> None:
    expired, _ = tokens.issue(SECRET, CLAIMS, 60, now=time.time() - 3600)
    other_key, _ = tokens.issue("another-secret-" + "y" * 32, CLAIMS, 60)
    good, _ = tokens.issue(SECRET, CLAIMS, 60)
    head, _, signature = good.split(".")
    forged_claims = {**vars(tokens.verify(SECRET, good)), "vfid": "user:x/other"}
    forged_payload = jwt.encode(forged_claims, "guess" * 8, algorithm="HS256").split(".")[1]
    unsigned = jwt.encode(forged_claims, None, algorithm="none")
    for bad in (expired, other_key, f"{head}.{forged_payload}.{signature}", unsigned, "", "x.y"):
        with pytest.raises(Unauthenticated) as caught:
            tokens.verify(SECRET, bad)
        assert caught.value.reason == "TRANSFER_TOKEN_INVALID"


def test_operation_and_path_scope() -> None:
    tokens.check_op(CLAIMS, ("download", "archive-download"))
    with pytest.raises(PermissionDenied) as caught:
        tokens.check_op(CLAIMS, ("upload",))
    assert caught.value.reason == "TRANSFER_SCOPE_VIOLATION"
    assert tokens.scoped_path(CLAIMS, "") == ("data",)
    assert tokens.scoped_path(CLAIMS, "sub/x.bin") == ("data", "sub", "x.bin")
    for escaping in ("..", "../other", "sub/../../x", "/etc/passwd"):
        with pytest.raises(PermissionDenied):
            tokens.scoped_path(CLAIMS, escaping)
    with pytest.raises(InvalidArgument):
        tokens.scoped_path(CLAIMS, "a\x00b")


def test_bearer_prefers_the_field() -> None:
    assert tokens.bearer({"authorization": "Bearer abc"}, "") == "abc"
    assert tokens.bearer({"authorization": "Bearer abc"}, "field") == "field"
    assert tokens.bearer({"authorization": "Basic abc"}, "") == ""
