"""A fake storage proxy registered with the real manager, and a cast of callers.

`world` (one per module): two domains whose allowed_vfolder_hosts grant every
host permission on the fake proxy's volumes, a project, and callers of every
role and relation: owner, project member, invitees, an outsider in the same
domain, a user of another domain, admins of both domains, a monitor and the
superadmin.
"""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import grpc
import pytest
from sqlalchemy import update

from bai.api.manager.v1 import vfolder_pb2 as pb
from bai.api.manager.v1 import vfolder_pb2_grpc as pb_grpc
from bai.manager.auth.principal import Principal, Role
from bai.manager.config import StorageProxyConfig
from bai.manager.db.identity import DomainRow
from tests.manager.callers import Caller, invoke, make_caller, make_domain, make_project, superadmin
from tests.manager.fixtures import ManagerHandle, unique
from tests.manager.vfolders.fake_storage import SECRET, FakeStorage

ALL_HOST_PERMISSIONS = [
    "create-vfolder",
    "modify-vfolder",
    "delete-vfolder",
    "mount-in-session",
    "upload-file",
    "download-file",
    "invite-others",
    "set-user-specific-permission",
]


@dataclass
class World:
    manager: ManagerHandle
    storage: FakeStorage
    proxy: str
    host: str
    host2: str
    domain: str
    other_domain: str
    project: uuid.UUID
    owner: Caller
    member: Caller
    invitee: Caller
    invitee2: Caller
    outsider: Caller
    foreigner: Caller
    admin: Caller
    foreign_admin: Caller
    monitor: Caller
    root: Caller

    async def call(self, channel: grpc.aio.Channel, who: Caller, name: str, request: Any) -> Any:
        return await invoke(channel, pb_grpc.VFolderServiceStub, who, name, request)

    async def create(
        self, channel: grpc.aio.Channel, who: Caller, name: str = "", **fields: Any
    ) -> pb.VFolder:
        fields.setdefault("host", self.host)
        request = pb.CreateVFolderRequest(name=name or unique("f"), **fields)
        reply = await self.call(channel, who, "CreateVFolder", request)
        return reply.vfolder  # type: ignore[no-any-return]

    def folder_dir(self, folder: pb.VFolder) -> Path:
        volume = folder.host.split(":", 1)[1]
        kind = "project" if folder.ownership_type == pb.FOLDER_OWNERSHIP_TYPE_PROJECT else "user"
        return self.storage.root / volume / f"{kind}-{folder.quota_scope.id}" / folder.id


def principal(who: Caller, role: Role = Role.USER, projects: Sequence[uuid.UUID] = ()) -> Principal:
    return Principal(
        user_id=who.user_id,
        username=who.email.split("@")[0],
        email=who.email,
        role=role,
        domain_name=who.domain,
        access_key=who.access_key,
        project_ids=frozenset(projects),
    )


async def grant_hosts(manager: ManagerHandle, domain: str, hosts: dict[str, list[str]]) -> None:
    async with manager.ctx.sessions() as db, db.begin():
        await db.execute(
            update(DomainRow).where(DomainRow.name == domain).values(allowed_vfolder_hosts=hosts)
        )


@pytest.fixture(scope="module")
async def world(
    manager: ManagerHandle, tmp_path_factory: pytest.TempPathFactory
) -> AsyncIterator[World]:
    # Only the RPCs the manager calls are implemented.
    storage = FakeStorage(tmp_path_factory.mktemp("storage"))  # type: ignore[abstract]
    address = await storage.start()
    proxy = unique("px")
    manager.ctx.config.storage.proxies[proxy] = StorageProxyConfig(
        manager_address=address, secret=SECRET
    )
    host, host2 = f"{proxy}:vol1", f"{proxy}:vol2"
    domain, other_domain = await make_domain(manager), await make_domain(manager)
    for name in (domain, other_domain):
        await grant_hosts(manager, name, {host: ALL_HOST_PERMISSIONS, host2: ALL_HOST_PERMISSIONS})
    project = await make_project(manager, domain)
    world = World(
        manager=manager,
        storage=storage,
        proxy=proxy,
        host=host,
        host2=host2,
        domain=domain,
        other_domain=other_domain,
        project=project,
        owner=await make_caller(manager, "user", domain, projects=(project,)),
        member=await make_caller(manager, "user", domain, projects=(project,)),
        invitee=await make_caller(manager, "user", domain),
        invitee2=await make_caller(manager, "user", domain),
        outsider=await make_caller(manager, "user", domain),
        foreigner=await make_caller(manager, "user", other_domain),
        admin=await make_caller(manager, "admin", domain),
        foreign_admin=await make_caller(manager, "admin", other_domain),
        monitor=await make_caller(manager, "monitor", domain),
        root=await superadmin(manager),
    )
    try:
        yield world
    finally:
        manager.ctx.config.storage.proxies.pop(proxy, None)
        await storage.stop()
