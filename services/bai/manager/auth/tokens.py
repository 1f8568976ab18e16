"""Bearer tokens: random strings whose SHA-256 names a Redis key holding the user id.

Kept in Redis so every replica sees them and revocation (logout, password
change, deactivation) is immediate; each user's tokens are indexed so that
all of them can be revoked at once.
"""

from __future__ import annotations

import hashlib
import json
import secrets
import uuid

from redis.asyncio import Redis

TOKEN_PREFIX = "bai:token:"
USER_TOKENS_PREFIX = "bai:user-tokens:"
# The longest lifetime a token may be issued for.
MAX_TTL_SECONDS = 86400


def token_key(token: str) -> str:
    return TOKEN_PREFIX + hashlib.sha256(token.encode()).hexdigest()


def user_id_of(raw: bytes) -> uuid.UUID:
    return uuid.UUID(json.loads(raw)["user_id"])


async def issue_token(redis: Redis, user_id: uuid.UUID, ttl_seconds: int) -> str:
    token = secrets.token_urlsafe(32)
    key = token_key(token)
    user_set = USER_TOKENS_PREFIX + str(user_id)
    async with redis.pipeline(transaction=True) as pipe:
        pipe.set(key, json.dumps({"user_id": str(user_id)}), ex=ttl_seconds)
        pipe.sadd(user_set, key)
        pipe.expire(user_set, MAX_TTL_SECONDS)
        await pipe.execute()
    return token


async def revoke_token(redis: Redis, token: str) -> None:
    await redis.delete(token_key(token))


async def revoke_user_tokens(redis: Redis, user_id: uuid.UUID) -> None:
    user_set = USER_TOKENS_PREFIX + str(user_id)
    keys = await redis.smembers(user_set)
    if keys:
        await redis.delete(*keys)
    await redis.delete(user_set)
