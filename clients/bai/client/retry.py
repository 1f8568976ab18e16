"""Retry policy: exponential backoff with jitter, on UNAVAILABLE, for idempotent calls.

A call is retried only when it is safe to send twice: reads (Get*, List*, WhoAmI,
and Watch*/Stream* before their first message) and calls whose request carries a
``request_id`` (the SDK fills an empty one with a fresh UUID, so every attempt
names the same logical request). ``retry=True``/``False`` on a call overrides
this.
"""

from __future__ import annotations

import random
from dataclasses import dataclass

import grpc


@dataclass(frozen=True)
class RetryPolicy:
    """How failed idempotent calls are retried.

    ``max_attempts`` counts the first try (1 disables retries). The n-th retry
    waits ``min(max_backoff, initial_backoff * multiplier**(n-1))``, reduced by a
    random fraction of up to ``jitter``. ``deadline`` (seconds) bounds the whole
    call, retries and waits included; None means no overall bound.
    """

    max_attempts: int = 4
    initial_backoff: float = 0.2
    max_backoff: float = 5.0
    multiplier: float = 2.0
    jitter: float = 0.5
    deadline: float | None = 60.0
    retry_on: frozenset[grpc.StatusCode] = frozenset({grpc.StatusCode.UNAVAILABLE})

    def __post_init__(self) -> None:
        if self.max_attempts < 1:
            raise ValueError("max_attempts must be at least 1")
        if not 0.0 <= self.jitter <= 1.0:
            raise ValueError("jitter must be within [0, 1]")

    def backoff(self, retry_number: int) -> float:
        """Seconds to wait before retry number ``retry_number`` (1-based)."""
        base = min(self.max_backoff, self.initial_backoff * self.multiplier ** (retry_number - 1))
        return base * (1.0 - self.jitter * random.random())

    def should_retry(self, code: grpc.StatusCode, attempt: int) -> bool:
        return code in self.retry_on and attempt < self.max_attempts


NO_RETRY = RetryPolicy(max_attempts=1)
