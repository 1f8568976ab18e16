"""Turns call metadata into a Principal: keypair signatures or bearer tokens.

Nonces and bearer tokens live in Redis so that every manager replica sees
them: a nonce is remembered for twice the allowed clock skew (after that its
timestamp is refused anyway), and a token for its lifetime.

Credential lookups are cached in memory and checked against a "credentials
epoch" counter in Redis, read in the same round trip as the nonce or token.
Every change to users, keypairs, projects or domains bumps the epoch
(`credentials_changed`), so a deactivated user or key is refused by every
replica on its very next call while unchanged credentials cost no database
query.
"""

from __future__ import annotations

import hashlib
import json
import secrets
import time
import uuid
from collections.abc import Callable, Mapping

from redis.asyncio import Redis
from redis.exceptions import RedisError

from bai.common import signing
from bai.common.errors import Unauthenticated, Unavailable
from bai.manager.auth.credentials import CredentialLookup, Identity, KeyRecord
from bai.manager.auth.principal import Principal
from bai.manager.config import AuthConfig

TOKEN_PREFIX = "bai:token:"
USER_TOKENS_PREFIX = "bai:user-tokens:"
NONCE_PREFIX = "bai:nonce:"
EPOCH_KEY = "bai:credentials-epoch"
_CACHE_LIMIT = 10_000


def _token_key(token: str) -> str:
    return TOKEN_PREFIX + hashlib.sha256(token.encode()).hexdigest()


class Authenticator:
    def __init__(
        self,
        lookup: CredentialLookup,
        redis: Redis,
        config: AuthConfig,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self._lookup = lookup
        self._redis = redis
        self._config = config
        self._clock = clock
        # key -> (record, epoch it was read under, monotonic time of reading)
        self._keys: dict[str, tuple[KeyRecord | None, bytes | None, float]] = {}
        self._users: dict[uuid.UUID, tuple[Identity | None, bytes | None, float]] = {}

    def _fresh(self, epoch: bytes | None, cached_epoch: bytes | None, read_at: float) -> bool:
        ttl = self._config.credential_cache_seconds
        return cached_epoch == epoch and time.monotonic() - read_at < ttl

    async def _key_record(self, access_key: str, epoch: bytes | None) -> KeyRecord | None:
        hit = self._keys.get(access_key)
        if hit is not None and self._fresh(epoch, hit[1], hit[2]):
            return hit[0]
        record = await self._lookup.by_access_key(access_key)
        if len(self._keys) >= _CACHE_LIMIT:
            self._keys.clear()
        self._keys[access_key] = (record, epoch, time.monotonic())
        return record

    async def _identity(self, user_id: uuid.UUID, epoch: bytes | None) -> Identity | None:
        hit = self._users.get(user_id)
        if hit is not None and self._fresh(epoch, hit[1], hit[2]):
            return hit[0]
        identity = await self._lookup.by_user_id(user_id)
        if len(self._users) >= _CACHE_LIMIT:
            self._users.clear()
        self._users[user_id] = (identity, epoch, time.monotonic())
        return identity

    async def credentials_changed(self) -> None:
        """Call after committing any change that affects who may call as what."""
        self._keys.clear()
        self._users.clear()
        await self._redis.incr(EPOCH_KEY)

    async def authenticate(self, method: str, metadata: Mapping[str, str]) -> Principal:
        try:
            if signing.ACCESS_KEY in metadata:
                return await self._by_signature(method, metadata)
            auth = metadata.get(signing.AUTHORIZATION, "")
            if auth:
                scheme, _, token = auth.partition(" ")
                if scheme.lower() != "bearer" or not token.strip():
                    raise Unauthenticated(
                        "authorization must be 'Bearer <token>'", reason="CREDENTIALS_MALFORMED"
                    )
                return await self._by_token(token.strip())
        except RedisError as exc:
            raise Unavailable("session store unavailable") from exc
        raise Unauthenticated(
            "send a bearer token or x-bai-* signature metadata", reason="CREDENTIALS_MISSING"
        )

    async def _by_signature(self, method: str, md: Mapping[str, str]) -> Principal:
        access_key = md.get(signing.ACCESS_KEY, "")
        timestamp = md.get(signing.TIMESTAMP, "")
        nonce = md.get(signing.NONCE, "")
        signature = md.get(signing.SIGNATURE, "")
        if not (timestamp and nonce and signature):
            raise Unauthenticated(
                "x-bai-timestamp, x-bai-nonce and x-bai-signature are required",
                reason="CREDENTIALS_MISSING",
            )
        if not signing.ACCESS_KEY_PATTERN.match(access_key) or not signing.NONCE_PATTERN.match(
            nonce
        ):
            raise Unauthenticated("malformed access key or nonce", reason="CREDENTIALS_MALFORMED")
        try:
            signed_at = signing.parse_timestamp(timestamp)
        except ValueError as exc:
            raise Unauthenticated("malformed timestamp", reason="CREDENTIALS_MALFORMED") from exc
        skew = self._config.max_clock_skew_seconds
        if abs(self._clock() - signed_at) > skew:
            raise Unauthenticated(
                f"timestamp is more than {skew} s away from server time", reason="TIMESTAMP_SKEW"
            )
        # One round trip: burn the nonce and read the credentials epoch.
        async with self._redis.pipeline(transaction=False) as pipe:
            pipe.set(f"{NONCE_PREFIX}{access_key}:{nonce}", b"1", nx=True, ex=2 * skew)
            pipe.get(EPOCH_KEY)
            fresh, epoch = await pipe.execute()
        record = await self._key_record(access_key, epoch)
        if record is None:
            raise Unauthenticated("unknown access key", reason="UNKNOWN_ACCESS_KEY")
        if not signing.signature_matches(record.secret_key, method, timestamp, nonce, signature):
            raise Unauthenticated("signature does not match", reason="SIGNATURE_MISMATCH")
        if not record.is_active:
            raise Unauthenticated("keypair is deactivated", reason="KEYPAIR_INACTIVE")
        self._require_active(record.identity)
        if not fresh:
            raise Unauthenticated("nonce already used", reason="NONCE_REPLAYED")
        return record.identity.principal

    async def _by_token(self, token: str) -> Principal:
        async with self._redis.pipeline(transaction=False) as pipe:
            pipe.get(_token_key(token))
            pipe.get(EPOCH_KEY)
            raw, epoch = await pipe.execute()
        if raw is None:
            raise Unauthenticated("token is invalid or expired", reason="TOKEN_INVALID")
        user_id = uuid.UUID(json.loads(raw)["user_id"])
        identity = await self._identity(user_id, epoch)
        if identity is None:
            raise Unauthenticated("token is invalid or expired", reason="TOKEN_INVALID")
        self._require_active(identity)
        return identity.principal

    @staticmethod
    def _require_active(identity: Identity) -> None:
        if identity.user_status != "active":
            raise Unauthenticated(f"user is {identity.user_status}", reason="USER_INACTIVE")

    async def issue_token(self, user_id: uuid.UUID, ttl_seconds: int) -> tuple[str, float]:
        token = secrets.token_urlsafe(32)
        expires_at = self._clock() + ttl_seconds
        key = _token_key(token)
        user_set = USER_TOKENS_PREFIX + str(user_id)
        async with self._redis.pipeline(transaction=True) as pipe:
            pipe.set(key, json.dumps({"user_id": str(user_id)}), ex=ttl_seconds)
            pipe.sadd(user_set, key)
            pipe.expire(user_set, 86400)  # the longest token lifetime
            await pipe.execute()
        return token, expires_at

    async def revoke_token(self, token: str) -> None:
        await self._redis.delete(_token_key(token))

    async def revoke_user_tokens(self, user_id: uuid.UUID) -> None:
        user_set = USER_TOKENS_PREFIX + str(user_id)
        keys = await self._redis.smembers(user_set)
        if keys:
            await self._redis.delete(*keys)
        await self._redis.delete(user_set)
