"""What live sessions hold, per keypair, project and domain, summed in PostgreSQL.

A scheduling round checks the pending sessions' owners against their limits,
so it needs what those owners' live sessions occupy. Read row by row, that
cost every round grows with the number of running sessions (each row's JSONB
decoded and added up in Python); summed in the database, a round reads one
row per scope and slot type, however many sessions run.
"""

from __future__ import annotations

import uuid
from collections import defaultdict
from collections.abc import Iterable
from dataclasses import dataclass
from decimal import Decimal
from typing import Any, cast

from sqlalchemy import ColumnElement, Numeric, Table, func, select, true
from sqlalchemy.ext.asyncio import AsyncSession

from bai.common.slots import Slots
from bai.manager.db.compute import SessionRow
from bai.manager.scheduling import KeypairUsage
from bai.manager.sessions import lifecycle

_SESSIONS = cast(Table, SessionRow.__table__)
_ALLOCATED = sorted(lifecycle.SESSION_ALLOCATED)


@dataclass(frozen=True)
class LiveUsage:
    keypairs: dict[str, KeypairUsage]
    projects: dict[str, Slots]
    domains: dict[str, Slots]


async def _slot_sums(
    db: AsyncSession, scope: ColumnElement[Any], keys: Iterable[Any]
) -> dict[Any, Slots]:
    """Per value of `scope` among `keys`: the summed occupied slots of its live sessions."""
    keys = list(keys)
    if not keys:
        return {}
    s = _SESSIONS.c
    each = func.jsonb_each_text(s.occupied_slots).table_valued("key", "value")
    query = (
        select(scope, each.c.key, func.sum(each.c.value.cast(Numeric)))
        .select_from(_SESSIONS)
        .join(each, true())
        .where(s.status.in_(_ALLOCATED), scope.in_(keys))
        .group_by(scope, each.c.key)
    )
    sums: dict[Any, dict[str, Decimal]] = defaultdict(dict)
    for key, slot, total in (await db.execute(query)).all():
        sums[key][slot] = total
    return {key: Slots(sums.get(key, {})) for key in keys}


async def _session_counts(
    db: AsyncSession, access_keys: Iterable[str]
) -> dict[str, tuple[int, int]]:
    """Per access key: (live non-SYSTEM sessions, live SYSTEM sessions)."""
    s = _SESSIONS.c
    system = (s.session_type == "system").label("system")
    query = (
        select(s.access_key, system, func.count())
        .where(s.status.in_(_ALLOCATED), s.access_key.in_(list(access_keys)))
        .group_by(s.access_key, system)
    )
    counts: dict[str, list[int]] = defaultdict(lambda: [0, 0])
    for access_key, is_system, n in (await db.execute(query)).all():
        counts[access_key][1 if is_system else 0] = n
    return {key: (pair[0], pair[1]) for key, pair in counts.items()}


async def live_usage(
    db: AsyncSession, access_keys: set[str], projects: set[uuid.UUID], domains: set[str]
) -> LiveUsage:
    """What the live sessions of these keypairs, projects and domains occupy (every
    one named gets an entry, empty when nothing of it runs)."""
    if not access_keys:
        return LiveUsage({}, {}, {})
    s = _SESSIONS.c
    occupied = await _slot_sums(db, s.access_key, access_keys)
    counts = await _session_counts(db, access_keys)
    keypairs = {key: KeypairUsage(occupied[key], *counts.get(key, (0, 0))) for key in access_keys}
    by_project = await _slot_sums(db, s.project_id, projects)
    by_domain = await _slot_sums(db, s.domain_name, domains)
    return LiveUsage(keypairs, {str(p): v for p, v in by_project.items()}, by_domain)
