"""Per-session checks that do not depend on agents: time, dependencies, quotas.

`Quotas` holds the in-round view of every limit (keypair, user, project,
domain) and usage as integer vectors; a placement adds to it, so that later
sessions in the same round see what earlier ones took. Only the slots a
session asks for are checked: a session that takes none of a slot cannot be
blocked by usage already above a lowered limit in that slot.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from decimal import Decimal

from bai.manager.scheduling.plan import Diagnostic, SchedulingCheck, Shortfall
from bai.manager.scheduling.snapshot import PendingSession, SchedulingSnapshot, SessionType
from bai.manager.scheduling.vectors import SlotSpace, Vector

_Limit = tuple[tuple[int, int], ...]


class LimitTable:
    """total_resource_slots per owner (access key, user, project or domain) and usage."""

    __slots__ = ("_limits", "_space", "_used", "check", "scope")

    def __init__(
        self,
        check: SchedulingCheck,
        scope: str,
        space: SlotSpace,
        limits: Mapping[str, Mapping[str, Decimal]],
        usage: Mapping[str, Mapping[str, Decimal]],
    ) -> None:
        self.check = check
        self.scope = scope
        self._space = space
        self._limits: dict[str, _Limit] = {}
        for owner, limit in limits.items():
            vec = space.vector(limit)
            self._limits[owner] = tuple(
                (space.index[slot], vec[space.index[slot]]) for slot in limit
            )
        self._used: dict[str, list[int]] = {
            owner: list(space.vector(slots)) for owner, slots in usage.items()
        }

    def used(self, owner: str) -> list[int]:
        used = self._used.get(owner)
        if used is None:
            used = self._used[owner] = self._space.zeros()
        return used

    def diagnose(self, owner: str, request: Vector) -> Diagnostic | None:
        limit = self._limits.get(owner)
        if not limit:
            return None
        used = self._used.get(owner)
        short: list[tuple[int, int, int]] = []
        for i, cap in limit:
            want = request[i]
            if want > 0:
                have = cap - used[i] if used is not None else cap
                if want > have:
                    short.append((i, want, have))
        if not short:
            return None
        space = self._space
        shortfalls = tuple(
            Shortfall(space.names[i], space.amount(i, want), space.amount(i, have))
            for i, want, have in sorted(short)
        )
        slots = ", ".join(s.slot for s in shortfalls)
        return Diagnostic(
            self.check, f"{self.scope} {owner} resource limit reached ({slots})", shortfalls
        )

    def add(self, owner: str, request: Vector) -> None:
        used = self.used(owner)
        for i, amount in enumerate(request):
            if amount:
                used[i] += amount


@dataclass(frozen=True, slots=True)
class _Concurrency:
    max_sessions: int
    max_sftp_sessions: int


class Quotas:
    """Everything a session's owners may still take in this round."""

    def __init__(self, snapshot: SchedulingSnapshot, space: SlotSpace) -> None:
        usage = snapshot.keypair_usage
        self.tables = (
            LimitTable(
                SchedulingCheck.KEYPAIR_RESOURCE_LIMIT,
                "keypair",
                space,
                {k: p.total_resource_slots for k, p in snapshot.keypair_policies.items()},
                {k: u.occupied for k, u in usage.items()},
            ),
            LimitTable(
                SchedulingCheck.USER_RESOURCE_LIMIT,
                "user",
                space,
                snapshot.user_limits,
                snapshot.user_usage,
            ),
            LimitTable(
                SchedulingCheck.PROJECT_RESOURCE_LIMIT,
                "project",
                space,
                snapshot.project_limits,
                snapshot.project_usage,
            ),
            LimitTable(
                SchedulingCheck.DOMAIN_RESOURCE_LIMIT,
                "domain",
                space,
                snapshot.domain_limits,
                snapshot.domain_usage,
            ),
        )
        self.keypairs = self.tables[0]
        self._concurrency = {
            k: _Concurrency(p.max_concurrent_sessions, p.max_concurrent_sftp_sessions)
            for k, p in snapshot.keypair_policies.items()
        }
        self._sessions = {k: u.concurrent_sessions for k, u in usage.items()}
        self._system_sessions = {k: u.concurrent_system_sessions for k, u in usage.items()}

    def _concurrency_diagnostic(self, session: PendingSession) -> Diagnostic | None:
        limits = self._concurrency.get(session.access_key)
        if limits is None:
            return None
        if session.session_type is SessionType.SYSTEM:
            cap, used = limits.max_sftp_sessions, self._system_sessions.get(session.access_key, 0)
            check, what = SchedulingCheck.SFTP_CONCURRENCY, "SFTP"
        else:
            cap, used = limits.max_sessions, self._sessions.get(session.access_key, 0)
            check, what = SchedulingCheck.CONCURRENCY, "concurrent"
        if cap and used >= cap:
            return Diagnostic(check, f"{used} of {cap} {what} sessions of the keypair in use")
        return None

    def diagnose(self, session: PendingSession, request: Vector) -> Diagnostic | None:
        found = self._concurrency_diagnostic(session)
        if found is not None:
            return found
        owners = (session.access_key, session.user_id, session.project_id, session.domain_name)
        for table, owner in zip(self.tables, owners, strict=True):
            found = table.diagnose(owner, request)
            if found is not None:
                return found
        return None

    def add(self, session: PendingSession, request: Vector) -> None:
        owners = (session.access_key, session.user_id, session.project_id, session.domain_name)
        for table, owner in zip(self.tables, owners, strict=True):
            table.add(owner, request)
        counts = (
            self._system_sessions if session.session_type is SessionType.SYSTEM else self._sessions
        )
        counts[session.access_key] = counts.get(session.access_key, 0) + 1


def time_and_dependencies(
    session: PendingSession, snapshot: SchedulingSnapshot
) -> Diagnostic | None:
    if session.starts_at is not None and session.starts_at > snapshot.now:
        return Diagnostic(
            SchedulingCheck.RESERVED_TIME,
            f"reserved to start at {session.starts_at.isoformat()}",
        )
    if session.dependencies_satisfied is False:
        return Diagnostic(
            SchedulingCheck.DEPENDENCIES, "waiting for dependencies to end TERMINATED with SUCCESS"
        )
    return None
