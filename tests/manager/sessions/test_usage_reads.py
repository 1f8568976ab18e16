"""live_usage: what live sessions hold per keypair, project and domain, summed in SQL.

The rows go in and the sums are read in one transaction that is rolled back,
so that neither the manager's own loops nor other tests see them; project and
domain sums are compared as a difference, since other tests' sessions share
the default project and domain.
"""

from __future__ import annotations

import uuid
from decimal import Decimal

from bai.common.slots import Slots
from bai.manager.db.compute import SessionRow
from bai.manager.scheduling import KeypairUsage
from bai.manager.sessions.usage_reads import live_usage
from tests.manager.callers import Caller
from tests.manager.fixtures import ManagerHandle
from tests.manager.sessions.helpers import IMAGE, default_project, make_group, member


def _session(
    who: Caller, project: uuid.UUID, group: str, status: str, slots: dict[str, str], **kw: str
) -> SessionRow:
    return SessionRow(
        id=uuid.uuid4(),
        name=f"usage-{uuid.uuid4().hex[:8]}",
        domain_name=who.domain,
        project_id=project,
        user_id=who.user_id,
        access_key=who.access_key,
        scaling_group=group,
        image=IMAGE,
        status=status,
        requested_slots=slots,
        occupied_slots=slots,
        **kw,
    )


def _minus(after: Slots, before: Slots) -> dict[str, Decimal]:
    keys = set(after) | set(before)
    return {k: after.get(k, Decimal(0)) - before.get(k, Decimal(0)) for k in keys}


async def test_live_sessions_are_summed_per_keypair_project_and_domain(
    manager: ManagerHandle,
) -> None:
    group = await make_group(manager)
    project = await default_project(manager)
    a, b, idle = await member(manager), await member(manager), await member(manager)
    keys = {a.access_key, b.access_key, idle.access_key}
    async with manager.ctx.sessions() as db, db.begin():
        before = await live_usage(db, keys, {project}, {"default"})
        db.add_all(
            [
                _session(a, project, group, "RUNNING", {"cpu": "1", "mem": "100"}),
                _session(a, project, group, "PREPARING", {"cpu": "0.25"}),
                _session(a, project, group, "RUNNING", {"cpu": "0.5"}, session_type="system"),
                # Not live, or holding nothing yet: not counted.
                _session(a, project, group, "TERMINATED", {"cpu": "8"}),
                _session(a, project, group, "PENDING", {"cpu": "16"}),
                _session(b, project, group, "TERMINATING", {"cpu": "2", "cuda.shares": "0.5"}),
            ]
        )
        await db.flush()
        after = await live_usage(db, keys, {project}, {"default"})
        await db.rollback()

    assert after.keypairs[a.access_key] == KeypairUsage(
        Slots({"cpu": Decimal("1.75"), "mem": Decimal(100)}),
        concurrent_sessions=2,
        concurrent_system_sessions=1,
    )
    assert after.keypairs[b.access_key] == KeypairUsage(
        Slots({"cpu": Decimal(2), "cuda.shares": Decimal("0.5")}), 1, 0
    )
    assert after.keypairs[idle.access_key] == KeypairUsage(Slots(), 0, 0)
    added = {"cpu": Decimal("3.75"), "mem": Decimal(100), "cuda.shares": Decimal("0.5")}
    assert _minus(after.projects[str(project)], before.projects[str(project)]) == added
    assert _minus(after.domains["default"], before.domains["default"]) == added


async def test_no_pending_owner_reads_nothing(manager: ManagerHandle) -> None:
    async with manager.ctx.sessions() as db:
        usage = await live_usage(db, set(), set(), set())
    assert (usage.keypairs, usage.projects, usage.domains) == ({}, {}, {})
