"""Tenancy probes: what an admin, a monitor and a user of one domain can do to
another domain's objects and to themselves, through the real manager."""

from __future__ import annotations

import uuid
from typing import Any

import grpc
from sqlalchemy import select

from bai.api.manager.v1 import (
    audit_pb2,
    audit_pb2_grpc,
    domain_pb2,
    domain_pb2_grpc,
    keypair_pb2,
    keypair_pb2_grpc,
    project_pb2,
    project_pb2_grpc,
    user_pb2,
    user_pb2_grpc,
)
from bai.api.manager.v1 import resource_policy_pb2 as rp
from bai.api.manager.v1 import resource_policy_pb2_grpc as rp_grpc
from bai.api.manager.v1 import scaling_group_pb2 as sg
from bai.api.manager.v1 import scaling_group_pb2_grpc as sg_grpc
from bai.manager.db.audit import AuditLogRow
from bai.manager.db.identity import UserRow
from bai.manager.db.policies import UserResourcePolicyRow
from tests.manager.callers import invoke, make_caller, make_domain, make_project, superadmin
from tests.manager.fixtures import ManagerHandle, unique
from tests.manager.test_users import PASSWORD, Actor, R, Tenant, fails, make_tenant, root
from tests.rpc_errors import violated_fields

NOT_FOUND = grpc.StatusCode.NOT_FOUND
DENIED = grpc.StatusCode.PERMISSION_DENIED


def users(channel: grpc.aio.Channel) -> user_pb2_grpc.UserServiceStub:
    return user_pb2_grpc.UserServiceStub(channel)


def projects(channel: grpc.aio.Channel) -> project_pb2_grpc.ProjectServiceStub:
    return project_pb2_grpc.ProjectServiceStub(channel)


def keypairs(channel: grpc.aio.Channel) -> keypair_pb2_grpc.KeypairServiceStub:
    return keypair_pb2_grpc.KeypairServiceStub(channel)


def domains(channel: grpc.aio.Channel) -> domain_pb2_grpc.DomainServiceStub:
    return domain_pb2_grpc.DomainServiceStub(channel)


def audit(channel: grpc.aio.Channel) -> audit_pb2_grpc.AuditLogServiceStub:
    return audit_pb2_grpc.AuditLogServiceStub(channel)


def user_update(user_id: str, paths: list[str], **fields: Any) -> user_pb2.UpdateUserRequest:
    return user_pb2.UpdateUserRequest(
        user=user_pb2.User(id=user_id, **fields), update_mask={"paths": paths}
    )


def new_user(domain: str, **fields: Any) -> user_pb2.CreateUserRequest:
    name = unique("u")
    return user_pb2.CreateUserRequest(
        user=user_pb2.User(
            username=name, email=f"{name}@example.com", domain_name=domain, **fields
        ),
        password=PASSWORD,
        create_keypair=True,
    )


def readers(t: Tenant) -> tuple[Actor, ...]:
    return (t.admin, t.monitor, t.user)


async def role_of(manager: ManagerHandle, user_id: str) -> str:
    async with manager.ctx.sessions() as db:
        row = await db.get(UserRow, uuid.UUID(user_id))
        assert row is not None
        return row.role


async def audit_domains(manager: ManagerHandle, actor: str) -> set[str]:
    async with manager.ctx.sessions() as db:
        query = select(AuditLogRow.domain_name).where(AuditLogRow.actor_user_id == uuid.UUID(actor))
        return set((await db.execute(query)).scalars())


async def test_nobody_changes_their_own_role(
    manager: ManagerHandle, channel: grpc.aio.Channel
) -> None:
    t = await make_tenant(manager, channel)
    for role in (R.USER_ROLE_USER, R.USER_ROLE_MONITOR, R.USER_ROLE_SUPERADMIN):
        request = user_update(t.admin.id, ["role"], role=role)
        await fails(
            users(channel).UpdateUser(request, metadata=t.admin.md), "ROLE_FORBIDDEN", DENIED
        )
    assert await role_of(manager, t.admin.id) == "admin"
    # Naming the role they already have changes nothing and is fine.
    same = user_update(t.admin.id, ["role", "full_name"], role=R.USER_ROLE_ADMIN, full_name="me")
    assert (await users(channel).UpdateUser(same, metadata=t.admin.md)).user.full_name == "me"
    # Monitors and users cannot write, not even about themselves.
    for who in (t.monitor, t.user):
        request = user_update(who.id, ["role"], role=R.USER_ROLE_ADMIN)
        reason = "READ_ONLY_ROLE" if who is t.monitor else "ROLE_FORBIDDEN"
        await fails(users(channel).UpdateUser(request, metadata=who.md), reason, DENIED)
    assert await role_of(manager, t.monitor.id) == "monitor"
    assert await role_of(manager, t.user.id) == "user"
    # An admin still changes the role of other users of their domain.
    request = user_update(t.monitor.id, ["role"], role=R.USER_ROLE_USER)
    await users(channel).UpdateUser(request, metadata=t.admin.md)
    assert await role_of(manager, t.monitor.id) == "user"


async def test_user_writes_across_domains(
    manager: ManagerHandle, channel: grpc.aio.Channel
) -> None:
    a, b = await make_tenant(manager, channel), await make_tenant(manager, channel)
    stub = users(channel)
    # Creating a user in another domain, or in one's own with another domain's project.
    await fails(stub.CreateUser(new_user(b.domain), metadata=a.admin.md), "SCOPE_FORBIDDEN")
    foreign_project = new_user(a.domain, project_ids=[b.project_id])
    await fails(stub.CreateUser(foreign_project, metadata=a.admin.md), "REFERENCE_NOT_FOUND")
    superuser = new_user(a.domain, role=R.USER_ROLE_SUPERADMIN)
    await fails(stub.CreateUser(superuser, metadata=a.admin.md), "ROLE_FORBIDDEN")
    # Every update mask on another domain's user is NOT_FOUND, never a write.
    for paths, fields in (
        (["role"], {"role": R.USER_ROLE_USER}),
        (["status"], {"status": user_pb2.USER_STATUS_INACTIVE}),
        (["email"], {"email": "taken@example.com"}),
    ):
        request = user_update(b.admin.id, paths, **fields)
        await fails(stub.UpdateUser(request, metadata=a.admin.md), "NOT_FOUND", NOT_FOUND)
    reset = user_pb2.UpdateUserRequest(user=user_pb2.User(id=b.user.id), password="hijacked-1")
    await fails(stub.UpdateUser(reset, metadata=a.admin.md), "NOT_FOUND", NOT_FOUND)
    delete = user_pb2.DeleteUserRequest(id=b.user.id)
    await fails(stub.DeleteUser(delete, metadata=a.admin.md), "NOT_FOUND", NOT_FOUND)
    # domain_name is immutable: naming it is INVALID_FIELD, for anyone.
    move = user_update(a.user.id, ["domain_name"], domain_name=b.domain)
    err = await fails(stub.UpdateUser(move, metadata=root(manager)), "INVALID_FIELD")
    assert violated_fields(err)
    # Granting SUPERADMIN to a user of one's own domain.
    grant = user_update(a.user.id, ["role"], role=R.USER_ROLE_SUPERADMIN)
    await fails(stub.UpdateUser(grant, metadata=a.admin.md), "ROLE_FORBIDDEN")
    assert await role_of(manager, a.user.id) == "user"
    async with manager.ctx.sessions() as db:
        row = await db.get(UserRow, uuid.UUID(b.admin.id))
        assert row is not None and row.role == "admin" and row.status == "active"


async def test_reads_across_domains_are_not_found(
    manager: ManagerHandle, channel: grpc.aio.Channel
) -> None:
    a, b = await make_tenant(manager, channel), await make_tenant(manager, channel)
    listed = await keypairs(channel).ListKeypairs(
        keypair_pb2.ListKeypairsRequest(user_id=b.user.id), metadata=root(manager)
    )
    (b_key,) = listed.keypairs
    for who in readers(a):
        calls = (
            users(channel).GetUser(user_pb2.GetUserRequest(id=b.user.id), metadata=who.md),
            projects(channel).GetProject(
                project_pb2.GetProjectRequest(id=b.project_id), metadata=who.md
            ),
            projects(channel).ListProjectMembers(
                project_pb2.ListProjectMembersRequest(project_id=b.project_id), metadata=who.md
            ),
            keypairs(channel).GetKeypair(
                keypair_pb2.GetKeypairRequest(access_key=b_key.access_key), metadata=who.md
            ),
            domains(channel).GetDomain(domain_pb2.GetDomainRequest(name=b.domain), metadata=who.md),
        )
        for call in calls:
            await fails(call, "NOT_FOUND", NOT_FOUND)
    # A plain user does not read their domain's admin, nor a project they are not in.
    other = await projects(channel).CreateProject(
        project_pb2.CreateProjectRequest(
            project=project_pb2.Project(name=unique("p"), domain_name=a.domain)
        ),
        metadata=a.admin.md,
    )
    await fails(
        users(channel).GetUser(user_pb2.GetUserRequest(id=a.admin.id), metadata=a.user.md),
        "NOT_FOUND",
    )
    await fails(
        projects(channel).GetProject(
            project_pb2.GetProjectRequest(id=other.project.id), metadata=a.user.md
        ),
        "NOT_FOUND",
    )


async def test_list_filters_outside_scope_are_empty(
    manager: ManagerHandle, channel: grpc.aio.Channel
) -> None:
    a, b = await make_tenant(manager, channel), await make_tenant(manager, channel)
    for who in (a.admin, a.monitor):
        by_domain = user_pb2.ListUsersRequest(domain_name=b.domain)
        assert not (await users(channel).ListUsers(by_domain, metadata=who.md)).users
        by_project = user_pb2.ListUsersRequest(project_id=b.project_id)
        assert not (await users(channel).ListUsers(by_project, metadata=who.md)).users
    for who in readers(a):
        listed = await projects(channel).ListProjects(
            project_pb2.ListProjectsRequest(domain_name=b.domain), metadata=who.md
        )
        assert not listed.projects
        for user_id in (b.user.id, b.admin.id):
            found = await keypairs(channel).ListKeypairs(
                keypair_pb2.ListKeypairsRequest(user_id=user_id), metadata=who.md
            )
            assert not found.keypairs
        mine = await keypairs(channel).ListKeypairs(
            keypair_pb2.ListKeypairsRequest(), metadata=who.md
        )
        owners = {k.user_id for k in mine.keypairs}
        assert owners and owners <= domain_users(a)
    # A plain user sees only their own keypairs, even when naming a neighbour.
    theirs = await keypairs(channel).ListKeypairs(
        keypair_pb2.ListKeypairsRequest(user_id=a.admin.id), metadata=a.user.md
    )
    assert not theirs.keypairs
    await fails(
        users(channel).ListUsers(user_pb2.ListUsersRequest(), metadata=a.user.md), "ROLE_FORBIDDEN"
    )


def domain_users(t: Tenant) -> set[str]:
    return {t.admin.id, t.monitor.id, t.user.id}


async def test_project_writes_across_domains(
    manager: ManagerHandle, channel: grpc.aio.Channel
) -> None:
    a, b = await make_tenant(manager, channel), await make_tenant(manager, channel)
    stub = projects(channel)
    into_b = project_pb2.CreateProjectRequest(
        project=project_pb2.Project(name=unique("p"), domain_name=b.domain)
    )
    await fails(stub.CreateProject(into_b, metadata=a.admin.md), "SCOPE_FORBIDDEN", DENIED)
    # A user of another domain cannot be added to one's own project.
    add = project_pb2.AddProjectMembersRequest(project_id=a.project_id, user_ids=[b.user.id])
    await fails(stub.AddProjectMembers(add, metadata=a.admin.md), "REFERENCE_NOT_FOUND")
    add = project_pb2.AddProjectMembersRequest(project_id=b.project_id, user_ids=[a.user.id])
    await fails(stub.AddProjectMembers(add, metadata=a.admin.md), "NOT_FOUND", NOT_FOUND)
    remove = project_pb2.RemoveProjectMembersRequest(project_id=b.project_id, user_ids=[b.user.id])
    await fails(stub.RemoveProjectMembers(remove, metadata=a.admin.md), "NOT_FOUND", NOT_FOUND)
    rename = project_pb2.UpdateProjectRequest(
        project=project_pb2.Project(id=b.project_id, name="mine"), update_mask={"paths": ["name"]}
    )
    await fails(stub.UpdateProject(rename, metadata=a.admin.md), "NOT_FOUND", NOT_FOUND)
    delete = project_pb2.DeleteProjectRequest(id=b.project_id)
    await fails(stub.DeleteProject(delete, metadata=a.admin.md), "NOT_FOUND", NOT_FOUND)
    # Moving one's own project into another domain is not an updatable path.
    move = project_pb2.UpdateProjectRequest(
        project=project_pb2.Project(id=a.project_id, domain_name=b.domain),
        update_mask={"paths": ["domain_name"]},
    )
    await fails(stub.UpdateProject(move, metadata=a.admin.md), "INVALID_FIELD")
    got = await stub.GetProject(
        project_pb2.GetProjectRequest(id=a.project_id), metadata=root(manager)
    )
    assert got.project.domain_name == a.domain
    members = await stub.ListProjectMembers(
        project_pb2.ListProjectMembersRequest(project_id=b.project_id), metadata=root(manager)
    )
    assert [m.user_id for m in members.members] == [b.user.id]
    # Monitors and users write nothing, in their own domain either.
    for who, reason in ((a.monitor, "READ_ONLY_ROLE"), (a.user, "ROLE_FORBIDDEN")):
        add = project_pb2.AddProjectMembersRequest(project_id=a.project_id, user_ids=[who.id])
        await fails(stub.AddProjectMembers(add, metadata=who.md), reason, DENIED)


async def test_keypair_writes_across_domains(
    manager: ManagerHandle, channel: grpc.aio.Channel
) -> None:
    a, b = await make_tenant(manager, channel), await make_tenant(manager, channel)
    stub = keypairs(channel)
    create = keypair_pb2.CreateKeypairRequest(user_id=b.user.id)
    await fails(stub.CreateKeypair(create, metadata=a.admin.md), "REFERENCE_NOT_FOUND")
    boss = (
        await users(channel).CreateUser(
            new_user(a.domain, role=R.USER_ROLE_SUPERADMIN), metadata=root(manager)
        )
    ).user
    create = keypair_pb2.CreateKeypairRequest(user_id=boss.id)
    await fails(stub.CreateKeypair(create, metadata=a.admin.md), "ROLE_FORBIDDEN")
    create = keypair_pb2.CreateKeypairRequest(user_id=a.user.id, is_admin=True)
    await fails(stub.CreateKeypair(create, metadata=a.admin.md), "INVALID_FIELD")
    for who in (a.monitor, a.user):
        create = keypair_pb2.CreateKeypairRequest(user_id=who.id)
        await fails(stub.CreateKeypair(create, metadata=who.md), reason=_reason(a, who))
    change = keypair_pb2.UpdateKeypairRequest(
        keypair=keypair_pb2.Keypair(access_key=b.user.access_key, is_active=False),
        update_mask={"paths": ["is_active"]},
    )
    await fails(stub.UpdateKeypair(change, metadata=a.admin.md), "NOT_FOUND", NOT_FOUND)
    delete = keypair_pb2.DeleteKeypairRequest(access_key=b.user.access_key)
    await fails(stub.DeleteKeypair(delete, metadata=a.admin.md), "NOT_FOUND", NOT_FOUND)
    # The owner is immutable: user_id is not an updatable path.
    steal = keypair_pb2.UpdateKeypairRequest(
        keypair=keypair_pb2.Keypair(access_key=b.user.access_key, user_id=a.admin.id),
        update_mask={"paths": ["user_id"]},
    )
    await fails(stub.UpdateKeypair(steal, metadata=root(manager)), "INVALID_FIELD")
    flag = keypair_pb2.UpdateKeypairRequest(
        keypair=keypair_pb2.Keypair(access_key=a.user.access_key, is_admin=True),
        update_mask={"paths": ["is_admin"]},
    )
    await fails(stub.UpdateKeypair(flag, metadata=a.admin.md), "INVALID_FIELD")
    got = await stub.GetKeypair(
        keypair_pb2.GetKeypairRequest(access_key=b.user.access_key), metadata=root(manager)
    )
    assert got.keypair.is_active and got.keypair.user_id == b.user.id


def _reason(t: Tenant, who: Actor) -> str:
    return "READ_ONLY_ROLE" if who is t.monitor else "ROLE_FORBIDDEN"


async def test_request_id_replay_is_per_caller(
    manager: ManagerHandle, channel: grpc.aio.Channel
) -> None:
    t = await make_tenant(manager, channel)
    other = await make_tenant(manager, channel)
    request = new_user(t.domain)
    request.request_id = str(uuid.uuid4())
    first = await users(channel).CreateUser(request, metadata=t.admin.md)
    assert first.secret_key
    # The same request_id and request from another caller never replays the first
    # caller's stored response (which holds a secret key).
    second_admin = (
        await users(channel).CreateUser(
            new_user(t.domain, role=R.USER_ROLE_ADMIN), metadata=root(manager)
        )
    ).user
    assert second_admin.id
    await fails(users(channel).CreateUser(request, metadata=root(manager)), "ALREADY_EXISTS")
    await fails(users(channel).CreateUser(request, metadata=other.admin.md), "SCOPE_FORBIDDEN")
    await fails(users(channel).CreateUser(request, metadata=t.monitor.md), "READ_ONLY_ROLE")
    await fails(users(channel).CreateUser(request, metadata=t.user.md), "ROLE_FORBIDDEN")
    # The first caller still gets its own response back.
    assert await users(channel).CreateUser(request, metadata=t.admin.md) == first
    # Once demoted, the same caller gets no replay either: the call is authorized again.
    demote = user_pb2.UpdateUserRequest(
        user=user_pb2.User(id=t.admin.id, role=R.USER_ROLE_USER), update_mask={"paths": ["role"]}
    )
    await users(channel).UpdateUser(demote, metadata=root(manager))
    await fails(users(channel).CreateUser(request, metadata=t.admin.md), "ROLE_FORBIDDEN")


async def test_page_tokens_do_not_cross_queries(
    manager: ManagerHandle, channel: grpc.aio.Channel
) -> None:
    a, b = await make_tenant(manager, channel), await make_tenant(manager, channel)
    page = await users(channel).ListUsers(
        user_pb2.ListUsersRequest(domain_name=b.domain, page_size=1), metadata=root(manager)
    )
    assert page.next_page_token
    # Reused by an admin of another domain with the same filter: still their scope only.
    reused = await users(channel).ListUsers(
        user_pb2.ListUsersRequest(
            domain_name=b.domain, page_size=1, page_token=page.next_page_token
        ),
        metadata=a.admin.md,
    )
    assert not reused.users
    # Reused in a different list: refused.
    for call in (
        projects(channel).ListProjects(
            project_pb2.ListProjectsRequest(page_token=page.next_page_token), metadata=a.admin.md
        ),
        keypairs(channel).ListKeypairs(
            keypair_pb2.ListKeypairsRequest(page_token=page.next_page_token), metadata=a.admin.md
        ),
        audit(channel).ListAuditLogs(
            audit_pb2.ListAuditLogsRequest(page_token=page.next_page_token), metadata=a.admin.md
        ),
    ):
        await fails(call, "INVALID_PAGE_TOKEN")
    # An audit log token is bound to the caller's scope.
    logs = await audit(channel).ListAuditLogs(
        audit_pb2.ListAuditLogsRequest(page_size=1), metadata=b.admin.md
    )
    assert logs.next_page_token
    await fails(
        audit(channel).ListAuditLogs(
            audit_pb2.ListAuditLogsRequest(page_size=1, page_token=logs.next_page_token),
            metadata=a.admin.md,
        ),
        "INVALID_PAGE_TOKEN",
    )


async def test_audit_log_filters_and_refused_writes_stay_home(
    manager: ManagerHandle, channel: grpc.aio.Channel
) -> None:
    a, b = await make_tenant(manager, channel), await make_tenant(manager, channel)
    # Refused attempts on domain B by A's admin must not land in B's audit log
    # (that would show A's actor to B and let A write into B's log).
    await fails(
        users(channel).CreateUser(new_user(b.domain), metadata=a.admin.md), "SCOPE_FORBIDDEN"
    )
    await fails(
        projects(channel).CreateProject(
            project_pb2.CreateProjectRequest(
                project=project_pb2.Project(name=unique("p"), domain_name=b.domain)
            ),
            metadata=a.admin.md,
        ),
        "SCOPE_FORBIDDEN",
    )
    await fails(
        domains(channel).UpdateDomain(
            domain_pb2.UpdateDomainRequest(
                domain=domain_pb2.Domain(name=b.domain, description="x"),
                update_mask={"paths": ["description"]},
            ),
            metadata=a.admin.md,
        ),
        "NOT_FOUND",
    )
    await fails(
        domains(channel).DeleteDomain(
            domain_pb2.DeleteDomainRequest(name=b.domain), metadata=a.admin.md
        ),
        "NOT_FOUND",
    )
    await fails(
        domains(channel).CreateDomain(
            domain_pb2.CreateDomainRequest(domain=domain_pb2.Domain(name=b.domain)),
            metadata=a.admin.md,
        ),
        "ROLE_FORBIDDEN",
    )
    assert await audit_domains(manager, a.admin.id) == {a.domain}
    seen_by_b = await audit(channel).ListAuditLogs(
        audit_pb2.ListAuditLogsRequest(page_size=1000), metadata=b.admin.md
    )
    assert a.admin.id not in {e.actor.user_id for e in seen_by_b.entries}
    # Filters outside the caller's scope yield nothing.
    for who in (a.admin, a.monitor, a.user):
        for filters in ({"domain_name": b.domain}, {"user_id": b.admin.id}):
            listed = await audit(channel).ListAuditLogs(
                audit_pb2.ListAuditLogsRequest(page_size=1000, **filters), metadata=who.md
            )
            assert not listed.entries
    # A superadmin's successful writes are still filed under the affected domain.
    await domains(channel).UpdateDomain(
        domain_pb2.UpdateDomainRequest(
            domain=domain_pb2.Domain(name=b.domain, description="y"),
            update_mask={"paths": ["description"]},
        ),
        metadata=root(manager),
    )
    created = await users(channel).CreateUser(new_user(b.domain), metadata=root(manager))
    filed = await audit(channel).ListAuditLogs(
        audit_pb2.ListAuditLogsRequest(page_size=1000, entity_type="domain"), metadata=b.admin.md
    )
    updates = [e for e in filed.entries if e.entity_id == b.domain and e.operation == "update"]
    assert [e.status for e in updates] == [audit_pb2.AUDIT_LOG_STATUS_SUCCESS]
    filed = await audit(channel).ListAuditLogs(
        audit_pb2.ListAuditLogsRequest(page_size=1000, entity_type="user"), metadata=b.monitor.md
    )
    assert created.user.id in {e.entity_id for e in filed.entries}


async def test_resource_policy_reads_and_writes(
    manager: ManagerHandle, channel: grpc.aio.Channel
) -> None:
    t = await make_tenant(manager, channel)
    private = unique("pol")
    async with manager.ctx.sessions() as db, db.begin():
        db.add(UserResourcePolicyRow(name=private))
    stub = rp_grpc.ResourcePolicyServiceStub(channel)
    # A user reads the policy assigned to them, not another one.
    got = await stub.GetUserResourcePolicy(
        rp.GetUserResourcePolicyRequest(name="default"), metadata=t.user.md
    )
    assert got.policy.name == "default"
    await fails(
        stub.GetUserResourcePolicy(
            rp.GetUserResourcePolicyRequest(name=private), metadata=t.user.md
        ),
        "NOT_FOUND",
        NOT_FOUND,
    )
    listed = await stub.ListUserResourcePolicies(
        rp.ListUserResourcePoliciesRequest(page_size=1000), metadata=t.user.md
    )
    assert [p.name for p in listed.policies] == ["default"]
    # Admins and monitors read every policy but write none.
    for who, reason in ((t.admin, "ROLE_FORBIDDEN"), (t.monitor, "READ_ONLY_ROLE")):
        got = await stub.GetUserResourcePolicy(
            rp.GetUserResourcePolicyRequest(name=private), metadata=who.md
        )
        assert got.policy.name == private
        update = rp.UpdateUserResourcePolicyRequest(
            policy=rp.UserResourcePolicy(name="default", max_vfolder_count=1),
            update_mask={"paths": ["max_vfolder_count"]},
        )
        await fails(stub.UpdateUserResourcePolicy(update, metadata=who.md), reason, DENIED)
        create = rp.CreateKeypairResourcePolicyRequest(
            policy=rp.KeypairResourcePolicy(name=unique("pol"))
        )
        await fails(stub.CreateKeypairResourcePolicy(create, metadata=who.md), reason, DENIED)
    # An admin may point a user of their domain at a policy, never a user elsewhere.
    other = await make_tenant(manager, channel)
    request = user_update(other.user.id, ["resource_policy"], resource_policy=private)
    await fails(users(channel).UpdateUser(request, metadata=t.admin.md), "NOT_FOUND")


async def test_scaling_group_filters_do_not_reveal_other_domains(
    manager: ManagerHandle, channel: grpc.aio.Channel
) -> None:
    top = await superadmin(manager)
    mine, theirs = await make_domain(manager), await make_domain(manager)
    their_project = await make_project(manager, theirs)
    shared, private = unique("sg"), unique("sg")
    stub = sg_grpc.ScalingGroupServiceStub
    for name in (shared, private):
        create = sg.CreateScalingGroupRequest(scaling_group=sg.ScalingGroup(name=name))
        await invoke(channel, stub, top, "CreateScalingGroup", create)
    for name, domain in ((shared, mine), (shared, theirs), (private, theirs)):
        assoc = sg.AssociateScalingGroupRequest(scaling_group_name=name, domain_name=domain)
        await invoke(channel, stub, top, "AssociateScalingGroup", assoc)
    for role in ("admin", "monitor"):
        who = await make_caller(manager, role, mine)

        async def names(domain: str, who: Any = who) -> list[str]:
            request = sg.ListScalingGroupsRequest(domain_name=domain, page_size=1000)
            reply = await invoke(channel, stub, who, "ListScalingGroups", request)
            return [g.name for g in reply.scaling_groups]

        assert await names("") == [shared]
        assert await names(mine) == [shared]
        # Which of my groups another domain also has is that domain's business.
        assert await names(theirs) == []
        get = sg.GetScalingGroupRequest(name=private)
        err = await _refused(invoke(channel, stub, who, "GetScalingGroup", get))
        assert err.code() == NOT_FOUND
        allowed = sg.ListAllowedScalingGroupsRequest(project_id=str(their_project))
        err = await _refused(invoke(channel, stub, who, "ListAllowedScalingGroups", allowed))
        assert err.code() == NOT_FOUND
        assoc = sg.AssociateScalingGroupRequest(
            scaling_group_name=shared, project_id=str(their_project)
        )
        err = await _refused(invoke(channel, stub, who, "AssociateScalingGroup", assoc))
        assert err.code() == DENIED
    assert await _root_names(channel, top, theirs) == sorted([shared, private])


async def _root_names(channel: grpc.aio.Channel, top: Any, domain: str) -> list[str]:
    request = sg.ListScalingGroupsRequest(domain_name=domain, page_size=1000)
    reply = await invoke(
        channel, sg_grpc.ScalingGroupServiceStub, top, "ListScalingGroups", request
    )
    return sorted(g.name for g in reply.scaling_groups)


async def _refused(call: Any) -> grpc.aio.AioRpcError:
    try:
        await call
    except grpc.aio.AioRpcError as exc:
        return exc
    raise AssertionError("the call was not refused")


async def test_superadmin_writes_are_filed_under_the_affected_domain(
    manager: ManagerHandle, channel: grpc.aio.Channel
) -> None:
    t = await make_tenant(manager, channel)
    md = root(manager)
    extra = await keypairs(channel).CreateKeypair(
        keypair_pb2.CreateKeypairRequest(user_id=t.user.id), metadata=md
    )
    access_key = extra.keypair.access_key
    await keypairs(channel).UpdateKeypair(
        keypair_pb2.UpdateKeypairRequest(
            keypair=keypair_pb2.Keypair(access_key=access_key, rate_limit=10),
            update_mask={"paths": ["rate_limit"]},
        ),
        metadata=md,
    )
    await keypairs(channel).DeleteKeypair(
        keypair_pb2.DeleteKeypairRequest(access_key=access_key), metadata=md
    )
    members = project_pb2.AddProjectMembersRequest(project_id=t.project_id, user_ids=[t.admin.id])
    await projects(channel).AddProjectMembers(members, metadata=md)
    await projects(channel).RemoveProjectMembers(
        project_pb2.RemoveProjectMembersRequest(project_id=t.project_id, user_ids=[t.admin.id]),
        metadata=md,
    )
    # The tenant's own admin sees what the superadmin did in their domain.
    seen = await audit(channel).ListAuditLogs(
        audit_pb2.ListAuditLogsRequest(page_size=100), metadata=t.admin.md
    )
    methods = {entry.method.rsplit("/", 1)[1] for entry in seen.entries}
    assert {
        "CreateKeypair",
        "UpdateKeypair",
        "DeleteKeypair",
        "AddProjectMembers",
        "RemoveProjectMembers",
    } <= methods
