"""Scheduler settings of a scaling group (its `scheduler` and `scheduler_opts`)."""

from __future__ import annotations

import enum
from dataclasses import dataclass


class OrderingPolicy(enum.StrEnum):
    FIFO = "fifo"
    LIFO = "lifo"
    # Dominant resource fairness: the access key with the smallest dominant share first.
    DRF = "drf"


class AgentSelector(enum.StrEnum):
    # The fitting agent with the least free capacity: keeps big holes for big sessions.
    CONCENTRATED = "concentrated"
    # The fitting agent with the most free capacity: spreads load.
    DISPERSED = "dispersed"
    # The next fitting agent after the cursor, in agent id order.
    ROUND_ROBIN = "round-robin"


@dataclass(frozen=True, slots=True)
class SchedulerConfig:
    ordering: OrderingPolicy = OrderingPolicy.FIFO
    selector: AgentSelector = AgentSelector.CONCENTRATED
    # True: the first session blocked on the group's agents stops the round
    # (no backfill); False: smaller sessions behind it may still be placed.
    strict_fifo: bool = False
    # Placements per round at most; the sessions not reached are deferred.
    max_sessions_per_round: int = 1000
