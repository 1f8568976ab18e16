"""The order in which pending sessions are considered.

Priority bands first (higher priority first); within a band FIFO (oldest
first), LIFO (newest first) or DRF: the access key with the smallest
dominant share (its largest fraction of the group's capacity in any slot)
goes next, re-evaluated after every decision so that a placement moves its
key back in the queue.
"""

from __future__ import annotations

import heapq
from collections.abc import Callable, Iterator, Sequence
from itertools import groupby

from bai.manager.scheduling.config import OrderingPolicy
from bai.manager.scheduling.snapshot import PendingSession


def _by_priority(sessions: Sequence[PendingSession]) -> list[list[PendingSession]]:
    ordered = sorted(sessions, key=lambda s: (-s.priority, s.created_at, s.id))
    return [list(band) for _, band in groupby(ordered, key=lambda s: s.priority)]


def fifo(sessions: Sequence[PendingSession]) -> Iterator[PendingSession]:
    for band in _by_priority(sessions):
        yield from band


def lifo(sessions: Sequence[PendingSession]) -> Iterator[PendingSession]:
    for band in _by_priority(sessions):
        band.sort(key=lambda s: (s.created_at, s.id), reverse=True)
        yield from band


def drf(
    sessions: Sequence[PendingSession], dominant_share: Callable[[str], float]
) -> Iterator[PendingSession]:
    """`dominant_share(access_key)` must reflect the placements made so far."""
    for band in _by_priority(sessions):
        queues: dict[str, list[PendingSession]] = {}
        for session in reversed(band):
            # Reversed, so that pop() from the end gives the oldest.
            queues.setdefault(session.access_key, []).append(session)
        heap = [
            (dominant_share(key), queue[-1].created_at, queue[-1].id, key)
            for key, queue in queues.items()
        ]
        heapq.heapify(heap)
        while heap:
            _, _, _, key = heapq.heappop(heap)
            queue = queues[key]
            yield queue.pop()
            if queue:
                # Resumed after the caller decided on the session: the share is current.
                heapq.heappush(heap, (dominant_share(key), queue[-1].created_at, queue[-1].id, key))


def session_order(
    policy: OrderingPolicy,
    sessions: Sequence[PendingSession],
    dominant_share: Callable[[str], float],
) -> Iterator[PendingSession]:
    if policy is OrderingPolicy.LIFO:
        return lifo(sessions)
    if policy is OrderingPolicy.DRF:
        return drf(sessions, dominant_share)
    return fifo(sessions)
