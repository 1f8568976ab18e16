"""How the SDK authenticates each call.

* :class:`KeypairCredentials` signs every call (every retry too) with HMAC-SHA256
  over the full method, a timestamp and a fresh nonce (see ``bai.common.signing``).
* :class:`TokenCredentials` sends ``authorization: Bearer <token>`` from Login.
* ``None``: no credentials; only ``AuthService.Login`` works.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Protocol, runtime_checkable

from bai.common.signing import AUTHORIZATION, signed_metadata


@runtime_checkable
class Credentials(Protocol):
    """Anything that turns a full method name into request metadata."""

    def metadata(self, method: str) -> list[tuple[str, str]]: ...


@dataclass(frozen=True)
class KeypairCredentials:
    """An access key and secret key; each call gets a fresh signature and nonce."""

    access_key: str
    secret_key: str = field(repr=False)

    def metadata(self, method: str) -> list[tuple[str, str]]:
        return signed_metadata(self.access_key, self.secret_key, method)


@dataclass(frozen=True)
class TokenCredentials:
    """A bearer token issued by ``AuthService.Login``."""

    token: str = field(repr=False)

    def metadata(self, method: str) -> list[tuple[str, str]]:
        return [(AUTHORIZATION, f"Bearer {self.token}")]
