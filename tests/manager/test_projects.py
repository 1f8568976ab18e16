"""ProjectService over a real manager: CRUD, membership, role limits, in-use, replay, audit."""

from __future__ import annotations

import uuid
from typing import Any

import grpc
from sqlalchemy import func, select

from bai.api.common.v1 import types_pb2
from bai.api.manager.v1 import domain_pb2, project_pb2, project_pb2_grpc, user_pb2
from bai.manager.db.compute import SessionRow
from bai.manager.db.identity import ProjectRow
from bai.manager.db.storage import VFolderRow
from tests.manager.fixtures import ManagerHandle, unique
from tests.manager.test_users import (
    add_session,
    audit_rows,
    fails,
    make_tenant,
    make_user,
    root,
    set_session_status,
)
from tests.manager.test_users import stub as user_stub
from tests.rpc_errors import violated_fields

SVC = "/bai.api.manager.v1.ProjectService/"


def stub(channel: grpc.aio.Channel) -> project_pb2_grpc.ProjectServiceStub:
    return project_pb2_grpc.ProjectServiceStub(channel)


def create(domain: str, name: str = "", **fields: Any) -> project_pb2.CreateProjectRequest:
    return project_pb2.CreateProjectRequest(
        project=project_pb2.Project(name=name or unique("p"), domain_name=domain, **fields)
    )


def members(project_id: str, *user_ids: str) -> dict[str, Any]:
    return {"project_id": project_id, "user_ids": list(user_ids)}


async def test_crud(manager: ManagerHandle, channel: grpc.aio.Channel) -> None:
    t = await make_tenant(manager, channel)
    projects = stub(channel)
    made = (
        await projects.CreateProject(
            create(
                t.domain,
                description="d",
                type=project_pb2.PROJECT_TYPE_MODEL_STORE,
                total_resource_slots=types_pb2.ResourceSlots(slots={"cpu": "4.0", "mem": "1024"}),
                allowed_vfolder_hosts={
                    "local:vol1": domain_pb2.HostPermissions(
                        permissions=["upload-file", "create-vfolder", "upload-file"]
                    )
                },
            ),
            metadata=t.admin.md,
        )
    ).project
    assert (made.type, made.is_active, made.resource_policy) == (
        project_pb2.PROJECT_TYPE_MODEL_STORE,
        True,
        "default",
    )
    assert dict(made.total_resource_slots.slots) == {"cpu": "4", "mem": "1024"}
    assert list(made.allowed_vfolder_hosts["local:vol1"].permissions) == [
        "create-vfolder",
        "upload-file",
    ]
    got = await projects.GetProject(
        project_pb2.GetProjectRequest(id=made.id), metadata=t.monitor.md
    )
    assert got.project == made
    new_name = unique("renamed")
    upd = (
        await projects.UpdateProject(
            project_pb2.UpdateProjectRequest(
                project=project_pb2.Project(id=made.id, name=new_name, is_active=False),
                update_mask={"paths": ["name", "is_active", "total_resource_slots"]},
            ),
            metadata=t.admin.md,
        )
    ).project
    assert (upd.name, upd.is_active, dict(upd.total_resource_slots.slots)) == (new_name, False, {})
    await projects.DeleteProject(project_pb2.DeleteProjectRequest(id=made.id), metadata=t.admin.md)
    for call in (
        projects.GetProject(project_pb2.GetProjectRequest(id=made.id), metadata=t.admin.md),
        projects.DeleteProject(project_pb2.DeleteProjectRequest(id=made.id), metadata=t.admin.md),
    ):
        await fails(call, "NOT_FOUND", grpc.StatusCode.NOT_FOUND)


async def test_bad_input_conflicts_and_references(
    manager: ManagerHandle, channel: grpc.aio.Channel
) -> None:
    t = await make_tenant(manager, channel)
    projects = stub(channel)
    bad = create(
        t.domain,
        name="no/slashes",
        description="x" * 1025,
        total_resource_slots=types_pb2.ResourceSlots(slots={"cpu": "-1", "Bad Slot": "1"}),
        allowed_vfolder_hosts={"h": domain_pb2.HostPermissions(permissions=["fly"])},
    )
    err = await fails(
        projects.CreateProject(bad, metadata=t.admin.md),
        "INVALID_FIELD",
        grpc.StatusCode.INVALID_ARGUMENT,
    )
    assert set(violated_fields(err)) == {
        "project.name",
        "project.description",
        "project.total_resource_slots[cpu]",
        "project.total_resource_slots['Bad Slot']",
        "project.allowed_vfolder_hosts['h'].permissions",
    }
    async with manager.ctx.sessions() as db:
        assert await db.scalar(select(func.count()).where(ProjectRow.domain_name == t.domain)) == 1
    name = unique("p")
    first = (await projects.CreateProject(create(t.domain, name), metadata=t.admin.md)).project
    await fails(
        projects.CreateProject(create(t.domain, name), metadata=t.admin.md),
        "ALREADY_EXISTS",
        grpc.StatusCode.ALREADY_EXISTS,
    )
    await fails(
        projects.CreateProject(create(unique("nodom")), metadata=root(manager)),
        "REFERENCE_NOT_FOUND",
    )
    await fails(
        projects.CreateProject(create(t.domain, resource_policy="none"), metadata=t.admin.md),
        "REFERENCE_NOT_FOUND",
    )
    taken = (
        await projects.GetProject(
            project_pb2.GetProjectRequest(id=t.project_id), metadata=t.admin.md
        )
    ).project.name
    rename = project_pb2.UpdateProjectRequest(
        project=project_pb2.Project(id=first.id, name=taken), update_mask={"paths": ["name"]}
    )
    await fails(projects.UpdateProject(rename, metadata=t.admin.md), "ALREADY_EXISTS")
    rename.update_mask.paths[:] = ["type", "domain_name"]
    err = await fails(projects.UpdateProject(rename, metadata=t.admin.md), "INVALID_FIELD")
    assert violated_fields(err) == ["update_mask", "update_mask"]


async def test_role_limits(manager: ManagerHandle, channel: grpc.aio.Channel) -> None:
    t = await make_tenant(manager, channel)
    other = await make_tenant(manager, channel)
    projects = stub(channel)
    await fails(
        projects.CreateProject(create(other.domain), metadata=t.admin.md),
        "SCOPE_FORBIDDEN",
        grpc.StatusCode.PERMISSION_DENIED,
    )
    foreign = project_pb2.GetProjectRequest(id=other.project_id)
    await fails(projects.GetProject(foreign, metadata=t.admin.md), "NOT_FOUND")
    await fails(
        projects.DeleteProject(
            project_pb2.DeleteProjectRequest(id=other.project_id), metadata=t.admin.md
        ),
        "NOT_FOUND",
    )
    listed = await projects.ListProjects(project_pb2.ListProjectsRequest(), metadata=t.monitor.md)
    assert [p.id for p in listed.projects] == [t.project_id]
    assert not (
        await projects.ListProjects(
            project_pb2.ListProjectsRequest(domain_name=other.domain), metadata=t.admin.md
        )
    ).projects
    second = (await projects.CreateProject(create(t.domain), metadata=t.admin.md)).project
    mine = await projects.ListProjects(project_pb2.ListProjectsRequest(), metadata=t.user.md)
    assert [p.id for p in mine.projects] == [t.project_id]
    await projects.GetProject(project_pb2.GetProjectRequest(id=t.project_id), metadata=t.user.md)
    await fails(
        projects.GetProject(project_pb2.GetProjectRequest(id=second.id), metadata=t.user.md),
        "NOT_FOUND",
    )
    for who, reason in ((t.monitor, "READ_ONLY_ROLE"), (t.user, "ROLE_FORBIDDEN")):
        await fails(projects.CreateProject(create(t.domain), metadata=who.md), reason)
        await fails(
            projects.UpdateProject(
                project_pb2.UpdateProjectRequest(
                    project=project_pb2.Project(id=t.project_id, description="x"),
                    update_mask={"paths": ["description"]},
                ),
                metadata=who.md,
            ),
            reason,
        )
        await fails(
            projects.DeleteProject(project_pb2.DeleteProjectRequest(id=second.id), metadata=who.md),
            reason,
        )
        await fails(
            projects.AddProjectMembers(
                project_pb2.AddProjectMembersRequest(**members(second.id, who.id)), metadata=who.md
            ),
            reason,
        )


async def test_membership(manager: ManagerHandle, channel: grpc.aio.Channel) -> None:
    t = await make_tenant(manager, channel)
    other = await make_tenant(manager, channel)
    projects = stub(channel)
    pid = (await projects.CreateProject(create(t.domain), metadata=t.admin.md)).project.id
    get = project_pb2.GetProjectRequest(id=pid)
    await fails(projects.GetProject(get, metadata=t.user.md), "NOT_FOUND")
    add = project_pb2.AddProjectMembersRequest(**members(pid, t.user.id, t.monitor.id))
    await projects.AddProjectMembers(add, metadata=t.admin.md)
    await projects.AddProjectMembers(add, metadata=t.admin.md)  # idempotent
    await projects.GetProject(get, metadata=t.user.md)  # membership counts at once
    listed = await projects.ListProjectMembers(
        project_pb2.ListProjectMembersRequest(project_id=pid), metadata=t.user.md
    )
    expected = sorted(
        [(t.user.id, t.user.username), (t.monitor.id, t.monitor.username)], key=lambda m: m[1]
    )
    assert [(m.user_id, m.username) for m in listed.members] == expected
    who = await user_stub(channel).GetUser(
        user_pb2.GetUserRequest(id=t.user.id), metadata=t.admin.md
    )
    assert pid in who.user.project_ids

    async def count() -> int:
        page = await projects.ListProjectMembers(
            project_pb2.ListProjectMembersRequest(project_id=pid), metadata=t.admin.md
        )
        return len(page.members)

    missing = str(uuid.uuid4())
    await fails(
        projects.AddProjectMembers(
            project_pb2.AddProjectMembersRequest(**members(pid, t.admin.id, missing)),
            metadata=t.admin.md,
        ),
        "REFERENCE_NOT_FOUND",
    )
    await fails(
        projects.AddProjectMembers(
            project_pb2.AddProjectMembersRequest(**members(pid, other.user.id)), metadata=t.admin.md
        ),
        "REFERENCE_NOT_FOUND",
    )
    err = await fails(
        projects.AddProjectMembers(
            project_pb2.AddProjectMembersRequest(**members(pid, t.admin.id, other.user.id)),
            metadata=root(manager),
        ),
        "INVALID_FIELD",
    )
    assert violated_fields(err) == ["user_ids[1]"]
    err = await fails(
        projects.AddProjectMembers(
            project_pb2.AddProjectMembersRequest(**members(pid, t.admin.id, t.admin.id, "zz")),
            metadata=t.admin.md,
        ),
        "INVALID_FIELD",
    )
    assert violated_fields(err) == ["user_ids[1]", "user_ids[2]"]
    assert await count() == 2  # all or nothing
    gone = await make_user(channel, t.admin.md, t.domain)
    await user_stub(channel).DeleteUser(user_pb2.DeleteUserRequest(id=gone.id), metadata=t.admin.md)
    await fails(
        projects.AddProjectMembers(
            project_pb2.AddProjectMembersRequest(**members(pid, gone.id)), metadata=t.admin.md
        ),
        "INVALID_STATE",
    )
    remove = project_pb2.RemoveProjectMembersRequest(**members(pid, t.user.id, gone.id))
    await projects.RemoveProjectMembers(remove, metadata=t.admin.md)
    await projects.RemoveProjectMembers(remove, metadata=t.admin.md)
    assert await count() == 1
    await fails(projects.GetProject(get, metadata=t.user.md), "NOT_FOUND")
    await fails(
        projects.ListProjectMembers(
            project_pb2.ListProjectMembersRequest(project_id=pid), metadata=other.admin.md
        ),
        "NOT_FOUND",
    )


async def test_delete_refused_while_in_use(
    manager: ManagerHandle, channel: grpc.aio.Channel
) -> None:
    t = await make_tenant(manager, channel)
    projects = stub(channel)
    pid = uuid.UUID(t.project_id)
    sid, vid = await add_session(manager, t, "RUNNING"), uuid.uuid4()
    async with manager.ctx.sessions() as db, db.begin():
        db.add(
            VFolderRow(
                id=vid,
                name="v",
                host="local:vol1",
                quota_scope_id="q",
                ownership_type="project",
                project_id=pid,
                domain_name=t.domain,
            )
        )
    delete = project_pb2.DeleteProjectRequest(id=t.project_id)
    await fails(
        projects.DeleteProject(delete, metadata=t.admin.md),
        "IN_USE",
        grpc.StatusCode.FAILED_PRECONDITION,
    )
    await set_session_status(manager, sid, "TERMINATED")
    await fails(projects.DeleteProject(delete, metadata=t.admin.md), "IN_USE")
    async with manager.ctx.sessions() as db, db.begin():
        await db.delete(await db.get(VFolderRow, vid))
    await projects.DeleteProject(delete, metadata=t.admin.md)
    async with manager.ctx.sessions() as db:
        assert await db.get(SessionRow, sid) is None


async def test_replay_paging_and_audit(manager: ManagerHandle, channel: grpc.aio.Channel) -> None:
    t = await make_tenant(manager, channel)
    projects = stub(channel)
    request = create(t.domain)
    request.request_id = str(uuid.uuid4())
    first = await projects.CreateProject(request, metadata=t.admin.md)
    assert await projects.CreateProject(request, metadata=t.admin.md) == first
    request.project.description = "changed"
    await fails(projects.CreateProject(request, metadata=t.admin.md), "REQUEST_ID_CONFLICT")
    for _ in range(3):
        await projects.CreateProject(create(t.domain), metadata=t.admin.md)
    seen: list[str] = []
    token = ""
    while True:
        page = await projects.ListProjects(
            project_pb2.ListProjectsRequest(domain_name=t.domain, page_size=2, page_token=token),
            metadata=root(manager),
        )
        seen += [p.name for p in page.projects]
        token = page.next_page_token
        if not token:
            break
    assert len(seen) == len(set(seen)) == 5 and seen == sorted(seen)
    [row] = await audit_rows(manager, SVC + "CreateProject", first.project.id)
    assert (row.status, row.entity_type, row.domain_name) == ("success", "project", t.domain)
    await fails(
        projects.DeleteProject(
            project_pb2.DeleteProjectRequest(id=first.project.id), metadata=t.monitor.md
        ),
        "READ_ONLY_ROLE",
    )
    [failed] = await audit_rows(manager, SVC + "DeleteProject", first.project.id)
    assert (failed.status, failed.reason) == ("failure", "READ_ONLY_ROLE")
    await projects.AddProjectMembers(
        project_pb2.AddProjectMembersRequest(**members(first.project.id, t.user.id)),
        metadata=t.admin.md,
    )
    [added] = await audit_rows(manager, SVC + "AddProjectMembers", first.project.id)
    assert (added.status, added.operation) == ("success", "add-members")
