"""Turns call metadata into a Principal: keypair signatures or bearer tokens.

A signed call costs one Redis command and, while the credential cache is
fresh, no database query: a Lua script burns the nonce (remembered for twice
the allowed clock skew, after which the timestamp is refused anyway), reads
the credentials epoch (see credential_cache) and counts the call against the
keypair's rate limit. The signature is checked against the cached secret
before anything is counted, so forged calls cost a key nothing. Usage is
counted in memory (see usage). Bearer tokens live in Redis (see tokens);
while the change feed is live (see invalidation) a cached token costs no
Redis round trip at all.
"""

from __future__ import annotations

import time
import uuid
from collections.abc import Callable, Mapping
from typing import cast

from redis.asyncio import Redis
from redis.exceptions import RedisError

from bai.common import signing
from bai.common.errors import PermissionDenied, ResourceExhausted, Unauthenticated, Unavailable
from bai.manager.auth import rate_limit, tokens, usage
from bai.manager.auth.client_address import client_address, is_allowed, parse_networks
from bai.manager.auth.credential_cache import MISSING, EpochCache
from bai.manager.auth.credentials import CredentialLookup, Identity, KeyRecord
from bai.manager.auth.invalidation import InvalidationListener, publish_change
from bai.manager.auth.principal import Principal
from bai.manager.config import AuthConfig

NONCE_PREFIX = "bai:nonce:"
EPOCH_KEY = "bai:credentials-epoch"
FORWARDED_FOR = "x-forwarded-for"

# KEYS: nonce, epoch, current rate window, previous rate window
# ARGV: nonce lifetime, rate window lifetime
# Returns {nonce was fresh (0/1), epoch, calls in this window, calls in the previous}.
SIGNED_CALL_SCRIPT = """
local fresh = redis.call('SET', KEYS[1], '1', 'NX', 'EX', ARGV[1])
local epoch = redis.call('GET', KEYS[2])
local count = redis.call('INCR', KEYS[3])
if count == 1 then redis.call('EXPIRE', KEYS[3], ARGV[2]) end
local previous = redis.call('GET', KEYS[4])
return {fresh and 1 or 0, epoch, count, previous}
"""


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
        self._trusted_proxies = parse_networks(config.trusted_proxies)
        self._keys: EpochCache[str, KeyRecord | None] = EpochCache(config.credential_cache_seconds)
        self._users: EpochCache[uuid.UUID, Identity | None] = EpochCache(
            config.credential_cache_seconds
        )
        # token hash -> user id; only used while the change feed is live.
        self._tokens: EpochCache[str, uuid.UUID] = EpochCache(config.credential_cache_seconds)
        self._signed_call = redis.register_script(SIGNED_CALL_SCRIPT)
        self.usage = usage.UsageCounter()
        self.changes = InvalidationListener(redis, self._forget)

    def _forget(self) -> None:
        self._keys.clear()
        self._users.clear()
        self._tokens.clear()

    async def credentials_changed(self) -> None:
        """Call after committing any change that affects who may call as what."""
        self._forget()
        await self._redis.incr(EPOCH_KEY)
        await publish_change(self._redis)

    async def authenticate(
        self, method: str, metadata: Mapping[str, str], peer: Callable[[], str] = str
    ) -> Principal:
        """`peer` gives grpc's peer string; it is only asked for when the user
        has an allowed_client_ip list, as most do not."""
        try:
            if signing.ACCESS_KEY in metadata:
                identity = await self._by_signature(method, metadata)
            elif auth := metadata.get(signing.AUTHORIZATION, ""):
                scheme, _, token = auth.partition(" ")
                if scheme.lower() != "bearer" or not token.strip():
                    raise Unauthenticated(
                        "authorization must be 'Bearer <token>'", reason="CREDENTIALS_MALFORMED"
                    )
                identity = await self._by_token(token.strip())
            else:
                raise Unauthenticated(
                    "send a bearer token or x-bai-* signature metadata",
                    reason="CREDENTIALS_MISSING",
                )
        except RedisError as exc:
            raise Unavailable("session store unavailable") from exc
        if identity.allowed_networks:
            self._require_allowed_address(identity, peer(), metadata.get(FORWARDED_FOR))
        return identity.principal

    def _require_allowed_address(
        self, identity: Identity, peer: str, forwarded_for: str | None
    ) -> None:
        address = client_address(peer, forwarded_for, self._trusted_proxies)
        if not is_allowed(address, identity.allowed_networks):
            raise PermissionDenied(
                f"calls from {address} are not allowed for this user",
                reason="CLIENT_ADDRESS_FORBIDDEN",
            )

    async def _by_signature(self, method: str, md: Mapping[str, str]) -> Identity:
        access_key = md.get(signing.ACCESS_KEY, "")
        timestamp = md.get(signing.TIMESTAMP, "")
        nonce = md.get(signing.NONCE, "")
        signature = md.get(signing.SIGNATURE, "")
        if not (timestamp and nonce and signature):
            raise Unauthenticated(
                "x-bai-timestamp, x-bai-nonce and x-bai-signature are required",
                reason="CREDENTIALS_MISSING",
            )
        if not (
            signing.ACCESS_KEY_PATTERN.match(access_key) and signing.NONCE_PATTERN.match(nonce)
        ):
            raise Unauthenticated("malformed access key or nonce", reason="CREDENTIALS_MALFORMED")
        try:
            signed_at = signing.parse_timestamp(timestamp)
        except ValueError as exc:
            raise Unauthenticated("malformed timestamp", reason="CREDENTIALS_MALFORMED") from exc
        now = self._clock()
        skew = self._config.max_clock_skew_seconds
        if abs(now - signed_at) > skew:
            raise Unauthenticated(
                f"timestamp is more than {skew} s away from server time", reason="TIMESTAMP_SKEW"
            )

        def verified(record: KeyRecord | None) -> KeyRecord:
            if record is None:
                raise Unauthenticated("unknown access key", reason="UNKNOWN_ACCESS_KEY")
            if not signing.signature_matches(
                record.secret_key, method, timestamp, nonce, signature
            ):
                raise Unauthenticated("signature does not match", reason="SIGNATURE_MISMATCH")
            return record

        cached = self._keys.peek(access_key)
        record = verified(
            cast("KeyRecord | None", cached)
            if cached is not MISSING
            else await self._keys.get(access_key, None, self._lookup.by_access_key)
        )
        current, previous = rate_limit.window_keys(access_key, now)
        fresh, epoch, in_window, in_previous = await self._signed_call(
            keys=[f"{NONCE_PREFIX}{access_key}:{nonce}", EPOCH_KEY, current, previous],
            args=[2 * skew, 2 * rate_limit.WINDOW_SECONDS],
        )
        if not self._keys.fresh(access_key, epoch):
            record = verified(await self._keys.get(access_key, epoch, self._lookup.by_access_key))
        if not record.is_active:
            raise Unauthenticated("keypair is deactivated", reason="KEYPAIR_INACTIVE")
        self._require_active(record.identity)
        if not fresh:
            raise Unauthenticated("nonce already used", reason="NONCE_REPLAYED")
        self.usage.record(access_key, now)
        if rate_limit.exceeded(record.rate_limit, int(in_window), int(in_previous or 0), now):
            raise ResourceExhausted(
                f"more than {record.rate_limit} requests in 15 minutes", reason="RATE_LIMITED"
            )
        return record.identity

    async def _by_token(self, token: str) -> Identity:
        key = tokens.token_key(token)
        live = self.changes.live
        # A prefix keeps local generations from ever equalling a Redis epoch.
        epoch: bytes | None = b"g%d" % self.changes.generation
        if live and self._tokens.fresh(key, epoch):
            user_id = cast(uuid.UUID, self._tokens.peek(key))
        else:
            async with self._redis.pipeline(transaction=False) as pipe:
                pipe.get(key)
                pipe.get(EPOCH_KEY)
                raw, redis_epoch = await pipe.execute()
            if raw is None:
                raise Unauthenticated("token is invalid or expired", reason="TOKEN_INVALID")
            user_id = tokens.user_id_of(raw)
            if live:
                self._tokens.put(key, user_id, epoch)
            else:
                epoch = redis_epoch
        identity = await self._users.get(user_id, epoch, self._lookup.by_user_id)
        if identity is None:
            raise Unauthenticated("token is invalid or expired", reason="TOKEN_INVALID")
        self._require_active(identity)
        return identity

    @staticmethod
    def _require_active(identity: Identity) -> None:
        if identity.user_status != "active":
            raise Unauthenticated(f"user is {identity.user_status}", reason="USER_INACTIVE")

    async def issue_token(self, user_id: uuid.UUID, ttl_seconds: int) -> tuple[str, float]:
        token = await tokens.issue_token(self._redis, user_id, ttl_seconds)
        return token, self._clock() + ttl_seconds

    async def revoke_token(self, token: str) -> None:
        await tokens.revoke_token(self._redis, token)
        await self.credentials_changed()

    async def revoke_user_tokens(self, user_id: uuid.UUID) -> None:
        await tokens.revoke_user_tokens(self._redis, user_id)
        await self.credentials_changed()
