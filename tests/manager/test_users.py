"""UserService over a real manager: CRUD, role limits, deactivation, replay, audit.

The Tenant/Actor helpers here are shared with test_keypairs and test_projects.
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from typing import Any

import grpc
import pytest
from sqlalchemy import func, select

from bai.api.manager.v1 import (
    auth_pb2,
    auth_pb2_grpc,
    domain_pb2,
    domain_pb2_grpc,
    project_pb2,
    project_pb2_grpc,
    user_pb2,
    user_pb2_grpc,
)
from bai.common import signing
from bai.manager.db.audit import AuditLogRow
from bai.manager.db.compute import SessionRow
from bai.manager.db.identity import UserRow
from tests.manager.fixtures import ManagerHandle, bearer, unique
from tests.rpc_errors import reason_of, violated_fields

PASSWORD = "password-1234"
WHOAMI = "/bai.api.manager.v1.AuthService/WhoAmI"
R = auth_pb2
GetReq, DelReq = user_pb2.GetUserRequest, user_pb2.DeleteUserRequest
ListReq = user_pb2.ListUsersRequest


@dataclass
class Actor:
    id: str
    username: str
    access_key: str
    secret_key: str
    token: str

    @property
    def md(self) -> list[tuple[str, str]]:
        return bearer(self.token)

    def signed(self, method: str) -> list[tuple[str, str]]:
        return signing.signed_metadata(self.access_key, self.secret_key, method)


@dataclass
class Tenant:
    domain: str
    project_id: str
    admin: Actor
    monitor: Actor
    user: Actor


def root(manager: ManagerHandle) -> list[tuple[str, str]]:
    return bearer(manager.admin_token)


async def fails(
    call: Any, reason: str, code: grpc.StatusCode | None = None
) -> grpc.aio.AioRpcError:
    with pytest.raises(grpc.aio.AioRpcError) as info:
        await call
    assert reason_of(info.value) == reason, info.value.details()
    if code is not None:
        assert info.value.code() == code
    return info.value


async def make_user(
    channel: grpc.aio.Channel,
    md: list[tuple[str, str]],
    domain: str,
    role: int = R.USER_ROLE_USER,
    **fields: Any,
) -> Actor:
    name = unique("u")
    user = user_pb2.User(username=name, email=f"{name}@example.com", domain_name=domain, **fields)
    user.role = role
    request = user_pb2.CreateUserRequest(user=user, password=PASSWORD, create_keypair=True)
    reply = await user_pb2_grpc.UserServiceStub(channel).CreateUser(request, metadata=md)
    login = await auth_pb2_grpc.AuthServiceStub(channel).Login(
        auth_pb2.LoginRequest(username=name, password=PASSWORD)
    )
    return Actor(reply.user.id, name, reply.keypair.access_key, reply.secret_key, login.token)


async def make_tenant(manager: ManagerHandle, channel: grpc.aio.Channel) -> Tenant:
    """A fresh domain with a project, a domain admin, a monitor and a member user."""
    md = root(manager)
    domain = unique("dom")
    await domain_pb2_grpc.DomainServiceStub(channel).CreateDomain(
        domain_pb2.CreateDomainRequest(domain=domain_pb2.Domain(name=domain)), metadata=md
    )
    project = await project_pb2_grpc.ProjectServiceStub(channel).CreateProject(
        project_pb2.CreateProjectRequest(
            project=project_pb2.Project(name=unique("proj"), domain_name=domain)
        ),
        metadata=md,
    )
    pid = project.project.id
    return Tenant(
        domain,
        pid,
        await make_user(channel, md, domain, R.USER_ROLE_ADMIN),
        await make_user(channel, md, domain, R.USER_ROLE_MONITOR),
        await make_user(channel, md, domain, project_ids=[pid]),
    )


async def audit_rows(manager: ManagerHandle, method: str, entity_id: str) -> list[AuditLogRow]:
    async with manager.ctx.sessions() as db:
        query = select(AuditLogRow).where(
            AuditLogRow.method == method, AuditLogRow.entity_id == entity_id
        )
        return list((await db.execute(query.order_by(AuditLogRow.created_at))).scalars())


def stub(channel: grpc.aio.Channel) -> user_pb2_grpc.UserServiceStub:
    return user_pb2_grpc.UserServiceStub(channel)


def rename(user_id: str, full_name: str = "x") -> user_pb2.UpdateUserRequest:
    user = user_pb2.User(id=user_id, full_name=full_name)
    return user_pb2.UpdateUserRequest(user=user, update_mask={"paths": ["full_name"]})


async def add_session(manager: ManagerHandle, t: Tenant, status: str) -> uuid.UUID:
    """A session row of t.user in t's project (no agent runs it)."""
    sid = uuid.uuid4()
    row = SessionRow(id=sid, name="s", domain_name=t.domain, image="python:3", status=status)
    row.project_id, row.scaling_group = uuid.UUID(t.project_id), "default"
    row.user_id, row.access_key = uuid.UUID(t.user.id), t.user.access_key
    async with manager.ctx.sessions() as db, db.begin():
        db.add(row)
    return sid


async def set_session_status(manager: ManagerHandle, sid: uuid.UUID, status: str) -> None:
    async with manager.ctx.sessions() as db, db.begin():
        row = await db.get(SessionRow, sid)
        assert row is not None
        row.status = status


async def test_create_get_update_user(manager: ManagerHandle, channel: grpc.aio.Channel) -> None:
    t = await make_tenant(manager, channel)
    users = stub(channel)
    name = unique("full")
    user = user_pb2.User(username=name, email=f"{name}@Example.com", domain_name=t.domain)
    user.full_name, user.container_uid = "Full Name", 1000
    user.project_ids.append(t.project_id)
    user.container_gids.extend([100, 100, 200])
    user.allowed_client_ip.extend(["10.0.0.1", "10.1.2.3/16"])
    request = user_pb2.CreateUserRequest(user=user, password=PASSWORD)
    created = await users.CreateUser(request, metadata=t.admin.md)
    u = created.user
    assert u.role == R.USER_ROLE_USER and u.status == user_pb2.USER_STATUS_ACTIVE
    assert u.resource_policy == "default"
    assert list(u.project_ids) == [t.project_id] and not created.secret_key
    assert u.HasField("container_uid") and not u.HasField("container_main_gid")
    assert list(u.container_gids) == [100, 200]
    assert list(u.allowed_client_ip) == ["10.0.0.1", "10.1.0.0/16"]
    got = (await users.GetUser(GetReq(id=u.id), metadata=t.monitor.md)).user
    assert got == u
    upd = await users.UpdateUser(
        user_pb2.UpdateUserRequest(
            user=user_pb2.User(id=u.id, full_name="Renamed", role=R.USER_ROLE_ADMIN),
            update_mask={"paths": ["full_name", "role", "container_uid"]},
            password="new-password-1",
        ),
        metadata=t.admin.md,
    )
    assert upd.user.full_name == "Renamed" and upd.user.role == R.USER_ROLE_ADMIN
    assert not upd.user.HasField("container_uid")
    await auth_pb2_grpc.AuthServiceStub(channel).Login(
        auth_pb2.LoginRequest(username=name, password="new-password-1")
    )


async def test_bad_input_changes_nothing(manager: ManagerHandle, channel: grpc.aio.Channel) -> None:
    name = "bad name!"
    user = user_pb2.User(username=name, email="not-an-email", domain_name="default")
    user.status, user.container_uid = user_pb2.USER_STATUS_DELETED, 0
    user.container_gids.append(-1)
    user.allowed_client_ip.append("999.1.1.1")
    user.project_ids.append("nope")
    request = user_pb2.CreateUserRequest(user=user, password="short")
    err = await fails(stub(channel).CreateUser(request, metadata=root(manager)), "INVALID_FIELD")
    assert err.code() == grpc.StatusCode.INVALID_ARGUMENT
    bad = (
        "username email status container_uid container_gids[0] allowed_client_ip[0] project_ids[0]"
    )
    assert set(violated_fields(err)) == {f"user.{f}" for f in bad.split()} | {"password"}
    async with manager.ctx.sessions() as db:
        assert await db.scalar(select(func.count()).where(UserRow.username == name)) == 0
    err = await fails(
        stub(channel).UpdateUser(
            user_pb2.UpdateUserRequest(user=user_pb2.User(id="x"), update_mask={"paths": ["id"]}),
            metadata=root(manager),
        ),
        "INVALID_FIELD",
    )
    assert set(violated_fields(err)) == {"user.id", "update_mask"}


async def test_uniqueness_and_references(manager: ManagerHandle, channel: grpc.aio.Channel) -> None:
    t = await make_tenant(manager, channel)
    other = await make_tenant(manager, channel)
    md = root(manager)

    def req(username: str, email: str, domain: str = t.domain, **kw: Any) -> Any:
        user = user_pb2.User(username=username, email=email, domain_name=domain, **kw)
        return stub(channel).CreateUser(
            user_pb2.CreateUserRequest(user=user, password=PASSWORD), metadata=md
        )

    new = unique("n")
    await fails(req(t.user.username, f"{new}@x.org"), "ALREADY_EXISTS")
    await fails(req(new, f"{t.user.username}@EXAMPLE.com"), "ALREADY_EXISTS")
    await fails(req(new, f"{new}@x.org", domain=unique("nodomain")), "REFERENCE_NOT_FOUND")
    await fails(req(new, f"{new}@x.org", resource_policy="nope"), "REFERENCE_NOT_FOUND")
    await fails(req(new, f"{new}@x.org", project_ids=[other.project_id]), "REFERENCE_NOT_FOUND")
    err = await fails(
        stub(channel).UpdateUser(
            user_pb2.UpdateUserRequest(
                user=user_pb2.User(id=t.monitor.id, email=f"{t.user.username}@example.COM"),
                update_mask={"paths": ["email"]},
            ),
            metadata=md,
        ),
        "ALREADY_EXISTS",
    )
    assert err.code() == grpc.StatusCode.ALREADY_EXISTS


async def test_domain_admin_limits(manager: ManagerHandle, channel: grpc.aio.Channel) -> None:
    t = await make_tenant(manager, channel)
    other = await make_tenant(manager, channel)
    users = stub(channel)
    await make_user(channel, t.admin.md, t.domain, R.USER_ROLE_ADMIN)
    await fails(make_user(channel, t.admin.md, other.domain), "SCOPE_FORBIDDEN")
    await fails(make_user(channel, t.admin.md, t.domain, R.USER_ROLE_SUPERADMIN), "ROLE_FORBIDDEN")
    await fails(
        users.GetUser(GetReq(id=other.user.id), metadata=t.admin.md),
        "NOT_FOUND",
        grpc.StatusCode.NOT_FOUND,
    )
    upd = rename(other.user.id)
    await fails(users.UpdateUser(upd, metadata=t.admin.md), "NOT_FOUND")
    await fails(users.DeleteUser(DelReq(id=other.user.id), metadata=t.admin.md), "NOT_FOUND")
    boss = await make_user(channel, root(manager), t.domain, R.USER_ROLE_SUPERADMIN)
    upd.user.id = boss.id
    await fails(users.UpdateUser(upd, metadata=t.admin.md), "ROLE_FORBIDDEN")
    grant = user_pb2.UpdateUserRequest(
        user=user_pb2.User(id=t.user.id, role=R.USER_ROLE_SUPERADMIN),
        update_mask={"paths": ["role"]},
    )
    await fails(users.UpdateUser(grant, metadata=t.admin.md), "ROLE_FORBIDDEN")
    listed = await users.ListUsers(ListReq(), metadata=t.admin.md)
    assert {u.domain_name for u in listed.users} == {t.domain}
    assert {t.admin.id, t.monitor.id, t.user.id, boss.id} <= {u.id for u in listed.users}
    foreign = await users.ListUsers(ListReq(domain_name=other.domain), metadata=t.admin.md)
    assert not foreign.users


async def test_monitor_and_user_limits(manager: ManagerHandle, channel: grpc.aio.Channel) -> None:
    t = await make_tenant(manager, channel)
    users = stub(channel)
    await users.GetUser(GetReq(id=t.user.id), metadata=t.monitor.md)
    await users.ListUsers(ListReq(), metadata=t.monitor.md)
    for who, reason in ((t.monitor, "READ_ONLY_ROLE"), (t.user, "ROLE_FORBIDDEN")):
        await fails(make_user(channel, who.md, t.domain), reason, grpc.StatusCode.PERMISSION_DENIED)
        await fails(users.UpdateUser(rename(t.user.id), metadata=who.md), reason)
        await fails(users.DeleteUser(DelReq(id=t.admin.id), metadata=who.md), reason)
    await fails(users.ListUsers(ListReq(), metadata=t.user.md), "ROLE_FORBIDDEN")
    me = await users.GetUser(
        GetReq(id=t.user.id), metadata=t.user.signed("/bai.api.manager.v1.UserService/GetUser")
    )
    assert me.user.username == t.user.username
    await fails(users.GetUser(GetReq(id=t.admin.id), metadata=t.user.md), "NOT_FOUND")


async def whoami_refused(channel: grpc.aio.Channel, md: list[tuple[str, str]]) -> str:
    with pytest.raises(grpc.aio.AioRpcError) as info:
        await auth_pb2_grpc.AuthServiceStub(channel).WhoAmI(auth_pb2.WhoAmIRequest(), metadata=md)
    assert info.value.code() == grpc.StatusCode.UNAUTHENTICATED
    return reason_of(info.value)


async def test_deactivation_stops_credentials_at_once(
    manager: ManagerHandle, channel: grpc.aio.Channel
) -> None:
    t = await make_tenant(manager, channel)
    users, auth = stub(channel), auth_pb2_grpc.AuthServiceStub(channel)
    await auth.WhoAmI(auth_pb2.WhoAmIRequest(), metadata=t.user.signed(WHOAMI))
    await auth.WhoAmI(auth_pb2.WhoAmIRequest(), metadata=t.user.md)

    def set_status(status: int) -> Any:
        return users.UpdateUser(
            user_pb2.UpdateUserRequest(
                user=user_pb2.User(id=t.user.id, status=status), update_mask={"paths": ["status"]}
            ),
            metadata=t.admin.md,
        )

    await set_status(user_pb2.USER_STATUS_INACTIVE)
    assert await whoami_refused(channel, t.user.signed(WHOAMI)) == "USER_INACTIVE"
    assert await whoami_refused(channel, t.user.md) == "TOKEN_INVALID"
    await set_status(user_pb2.USER_STATUS_ACTIVE)
    await auth.WhoAmI(auth_pb2.WhoAmIRequest(), metadata=t.user.signed(WHOAMI))
    await users.DeleteUser(DelReq(id=t.user.id), metadata=t.admin.md)
    assert await whoami_refused(channel, t.user.signed(WHOAMI)) == "KEYPAIR_INACTIVE"
    got = await users.GetUser(GetReq(id=t.user.id), metadata=t.admin.md)
    assert got.user.status == user_pb2.USER_STATUS_DELETED
    await users.DeleteUser(DelReq(id=t.user.id), metadata=t.admin.md)
    await fails(set_status(user_pb2.USER_STATUS_ACTIVE), "INVALID_STATE")
    listed = await users.ListUsers(ListReq(domain_name=t.domain), metadata=t.admin.md)
    assert t.user.id not in {u.id for u in listed.users}
    deleted = await users.ListUsers(
        ListReq(domain_name=t.domain, status=user_pb2.USER_STATUS_DELETED), metadata=t.admin.md
    )
    assert [u.id for u in deleted.users] == [t.user.id]


async def test_delete_rules_and_purge(manager: ManagerHandle, channel: grpc.aio.Channel) -> None:
    t = await make_tenant(manager, channel)
    users = stub(channel)
    await fails(users.DeleteUser(DelReq(id=t.admin.id), metadata=t.admin.md), "INVALID_STATE")
    purge = DelReq(id=t.user.id, purge=True)
    await fails(users.DeleteUser(purge, metadata=t.admin.md), "ROLE_FORBIDDEN")
    session_id = await add_session(manager, t, "RUNNING")
    await fails(users.DeleteUser(purge, metadata=root(manager)), "IN_USE")
    await set_session_status(manager, session_id, "TERMINATED")
    await users.DeleteUser(purge, metadata=root(manager))
    await fails(users.GetUser(GetReq(id=t.user.id), metadata=root(manager)), "NOT_FOUND")
    assert await whoami_refused(channel, t.user.signed(WHOAMI)) == "UNKNOWN_ACCESS_KEY"
    await fails(users.DeleteUser(purge, metadata=root(manager)), "NOT_FOUND")


async def test_request_id_replay(manager: ManagerHandle, channel: grpc.aio.Channel) -> None:
    t = await make_tenant(manager, channel)
    name, rid = unique("r"), str(uuid.uuid4())
    request = user_pb2.CreateUserRequest(
        user=user_pb2.User(username=name, email=f"{name}@x.org", domain_name=t.domain),
        password=PASSWORD,
        create_keypair=True,
        request_id=rid,
    )
    first = await stub(channel).CreateUser(request, metadata=t.admin.md)
    again = await stub(channel).CreateUser(request, metadata=t.admin.md)
    assert first == again and first.secret_key and first.keypair.access_key
    request.user.full_name = "different"
    await fails(
        stub(channel).CreateUser(request, metadata=t.admin.md),
        "REQUEST_ID_CONFLICT",
        grpc.StatusCode.FAILED_PRECONDITION,
    )


async def test_paging_and_filters(manager: ManagerHandle, channel: grpc.aio.Channel) -> None:
    t = await make_tenant(manager, channel)
    extra = [await make_user(channel, t.admin.md, t.domain) for _ in range(4)]
    seen: list[str] = []
    token = ""
    while True:
        page = await stub(channel).ListUsers(
            ListReq(domain_name=t.domain, page_size=2, page_token=token), metadata=root(manager)
        )
        assert len(page.users) <= 2
        seen += [u.username for u in page.users]
        token = page.next_page_token
        if not token:
            break
    expected = {a.username for a in [t.admin, t.monitor, t.user, *extra]}
    assert seen == sorted(seen) and len(seen) == len(set(seen)) and set(seen) == expected
    first = await stub(channel).ListUsers(
        ListReq(domain_name=t.domain, page_size=1), metadata=root(manager)
    )
    other_filter = ListReq(page_token=first.next_page_token)
    await fails(stub(channel).ListUsers(other_filter, metadata=root(manager)), "INVALID_PAGE_TOKEN")
    garbage = ListReq(page_token="???")
    await fails(stub(channel).ListUsers(garbage, metadata=root(manager)), "INVALID_PAGE_TOKEN")
    members = await stub(channel).ListUsers(ListReq(project_id=t.project_id), metadata=t.monitor.md)
    assert [u.id for u in members.users] == [t.user.id]
    monitors = await stub(channel).ListUsers(
        ListReq(domain_name=t.domain, role=R.USER_ROLE_MONITOR), metadata=root(manager)
    )
    assert [u.id for u in monitors.users] == [t.monitor.id]


async def test_writes_are_audited(manager: ManagerHandle, channel: grpc.aio.Channel) -> None:
    t = await make_tenant(manager, channel)
    create = "/bai.api.manager.v1.UserService/CreateUser"
    [row] = await audit_rows(manager, create, t.user.id)
    outcome = (row.status, row.entity_type, row.operation, row.domain_name)
    assert outcome == ("success", "user", "create", t.domain)
    update = "/bai.api.manager.v1.UserService/UpdateUser"
    await fails(
        stub(channel).UpdateUser(rename(t.user.id), metadata=t.monitor.md), "READ_ONLY_ROLE"
    )
    [failed] = await audit_rows(manager, update, t.user.id)
    assert (failed.status, failed.reason) == ("failure", "READ_ONLY_ROLE")
    assert failed.actor_user_id == uuid.UUID(t.monitor.id)
    await stub(channel).DeleteUser(DelReq(id=t.user.id), metadata=t.admin.md)
    [deleted] = await audit_rows(manager, "/bai.api.manager.v1.UserService/DeleteUser", t.user.id)
    assert deleted.status == "success"
