"""`bai manager bootstrap` grants the default domain the default storage host once."""

from __future__ import annotations

from sqlalchemy import select

from bai.manager.bootstrap import bootstrap
from bai.manager.db.identity import DomainRow
from bai.manager.vfolders.permissions import HOST_PERMISSIONS
from tests.manager.fixtures import ManagerHandle, unique


async def hosts(manager: ManagerHandle) -> dict[str, list[str]]:
    async with manager.ctx.sessions() as db:
        found = await db.scalar(
            select(DomainRow.allowed_vfolder_hosts).where(DomainRow.name == "default")
        )
    return dict(found or {})


async def test_the_default_storage_host_is_granted_once(manager: ManagerHandle) -> None:
    host = f"{unique('px')}:local"
    async with manager.ctx.sessions() as db, db.begin():
        await bootstrap(db, vfolder_host=host)
    assert sorted((await hosts(manager))[host]) == sorted(HOST_PERMISSIONS)

    # An admin narrows it; bootstrapping again leaves their choice alone.
    async with manager.ctx.sessions() as db, db.begin():
        domain = await db.get(DomainRow, "default")
        assert domain is not None
        domain.allowed_vfolder_hosts = {**domain.allowed_vfolder_hosts, host: ["download-file"]}
    async with manager.ctx.sessions() as db, db.begin():
        await bootstrap(db, vfolder_host=host)
    assert (await hosts(manager))[host] == ["download-file"]
