"""ProjectService: thin edge over bai.manager.admin.projects."""

from __future__ import annotations

import uuid
from collections.abc import Mapping
from typing import Any

from bai.api.common.v1 import types_pb2
from bai.api.manager.v1 import auth_pb2, domain_pb2, project_pb2, project_pb2_grpc
from bai.manager.admin import projects
from bai.manager.api.convert import ROLE_TO_PROTO, timestamp
from bai.manager.api.rpc import Call, unary
from bai.manager.auth.principal import Role
from bai.manager.context import ManagerContext
from bai.manager.db.identity import ProjectRow, UserRow
from bai.manager.validation import Violations
from bai.manager.vfolders.permissions import HOST_PERMISSIONS

TYPE_TO_PROTO = {
    "general": project_pb2.PROJECT_TYPE_GENERAL,
    "model-store": project_pb2.PROJECT_TYPE_MODEL_STORE,
}
TYPE_FROM_PROTO = {v: k for k, v in TYPE_TO_PROTO.items()}


def project_to_proto(row: ProjectRow) -> project_pb2.Project:
    return project_pb2.Project(
        id=str(row.id),
        name=row.name,
        domain_name=row.domain_name,
        description=row.description,
        is_active=row.is_active,
        type=TYPE_TO_PROTO.get(row.type, project_pb2.PROJECT_TYPE_UNSPECIFIED),
        total_resource_slots=types_pb2.ResourceSlots(slots=row.total_resource_slots),
        allowed_vfolder_hosts={
            host: domain_pb2.HostPermissions(permissions=perms)
            for host, perms in row.allowed_vfolder_hosts.items()
        },
        resource_policy=row.resource_policy,
        created_at=timestamp(row.created_at),
        modified_at=timestamp(row.modified_at),
    )


def member_to_proto(row: UserRow) -> project_pb2.ProjectMember:
    return project_pb2.ProjectMember(
        user_id=str(row.id),
        username=row.username,
        email=row.email,
        role=ROLE_TO_PROTO.get(Role(row.role), auth_pb2.USER_ROLE_UNSPECIFIED),
    )


def vfolder_hosts(
    v: Violations, field: str, hosts: Mapping[str, domain_pb2.HostPermissions]
) -> dict[str, list[str]]:
    if len(hosts) > 64:
        v.add(field, "at most 64 hosts")
    clean: dict[str, list[str]] = {}
    for host, perms in hosts.items():
        label = f"{field}[{host[:40]!r}]"
        if not host or len(host) > 128 or not host.isprintable() or host != host.strip():
            v.add(label, "must be a host name of 1-128 printable characters")
        for perm in perms.permissions:
            if perm not in HOST_PERMISSIONS:
                v.add(f"{label}.permissions", f"{perm[:40]!r} is not a vfolder host permission")
        clean[host] = sorted(set(perms.permissions))
    return clean


def project_values(v: Violations, pr: project_pb2.Project, fields: list[str]) -> dict[str, Any]:
    out: dict[str, Any] = {}
    if "name" in fields:
        v.name("project.name", pr.name)
        out["name"] = pr.name
    if "description" in fields:
        v.text("project.description", pr.description, 1024)
        out["description"] = pr.description
    if "is_active" in fields:
        out["is_active"] = pr.is_active
    if "total_resource_slots" in fields:
        out["total_resource_slots"] = v.slots(
            "project.total_resource_slots", pr.total_resource_slots.slots
        )
    if "allowed_vfolder_hosts" in fields:
        out["allowed_vfolder_hosts"] = vfolder_hosts(
            v, "project.allowed_vfolder_hosts", pr.allowed_vfolder_hosts
        )
    if "resource_policy" in fields:
        v.name("project.resource_policy", pr.resource_policy)
        out["resource_policy"] = pr.resource_policy
    return out


def _uuid(v: Violations, field: str, value: str) -> uuid.UUID:
    return v.uuid(field, value) or uuid.UUID(int=0)


def _user_ids(v: Violations, values: Any) -> list[uuid.UUID]:
    if not 1 <= len(values) <= 100:
        v.add("user_ids", "name 1-100 users")
    ids: list[uuid.UUID] = []
    for i, raw in enumerate(values):
        parsed = v.uuid(f"user_ids[{i}]", raw)
        if parsed is None:
            continue
        if parsed in ids:
            v.add(f"user_ids[{i}]", "is a duplicate")
        ids.append(parsed)
    return ids


class ProjectServicer(project_pb2_grpc.ProjectServiceServicer):
    SERVICE = "bai.api.manager.v1.ProjectService"

    def __init__(self, ctx: ManagerContext) -> None:
        self.ctx = ctx

    @unary(audit=("project", "create"))
    async def CreateProject(
        self, request: project_pb2.CreateProjectRequest, call: Call
    ) -> project_pb2.CreateProjectResponse:
        v = Violations()
        pr = request.project
        v.name("project.domain_name", pr.domain_name)
        v.request_id(request.request_id)
        if pr.type not in TYPE_FROM_PROTO and pr.type != project_pb2.PROJECT_TYPE_UNSPECIFIED:
            v.add("project.type", "is not a ProjectType")
        fields = ["name", "description", "total_resource_slots", "allowed_vfolder_hosts"]
        values = project_values(v, pr, fields)
        policy = pr.resource_policy or "default"
        v.name("project.resource_policy", policy)
        v.raise_if_any()
        # The project's domain only once created: a refused call stays in the caller's.
        call.entity_id = pr.name
        values.update(
            domain_name=pr.domain_name,
            resource_policy=policy,
            is_active=True,
            type=TYPE_FROM_PROTO.get(pr.type, "general"),
        )
        async with self.ctx.sessions() as db, db.begin():
            row = await projects.create_project(db, call.principal, values)
        call.entity_id, call.domain_name = str(row.id), row.domain_name
        return project_pb2.CreateProjectResponse(project=project_to_proto(row))

    @unary()
    async def GetProject(
        self, request: project_pb2.GetProjectRequest, call: Call
    ) -> project_pb2.GetProjectResponse:
        v = Violations()
        project_id = _uuid(v, "id", request.id)
        v.raise_if_any()
        async with self.ctx.sessions() as db:
            row = await projects.get_project(db, call.principal, project_id)
        return project_pb2.GetProjectResponse(project=project_to_proto(row))

    @unary()
    async def ListProjects(
        self, request: project_pb2.ListProjectsRequest, call: Call
    ) -> project_pb2.ListProjectsResponse:
        v = Violations()
        size = v.page_size(request.page_size)
        if request.domain_name:
            v.name("domain_name", request.domain_name)
        v.raise_if_any()
        async with self.ctx.sessions() as db:
            rows, token = await projects.list_projects(
                db, call.principal, request.domain_name, size, request.page_token
            )
        return project_pb2.ListProjectsResponse(
            projects=[project_to_proto(r) for r in rows], next_page_token=token
        )

    @unary(audit=("project", "update"))
    async def UpdateProject(
        self, request: project_pb2.UpdateProjectRequest, call: Call
    ) -> project_pb2.UpdateProjectResponse:
        v = Violations()
        project_id = _uuid(v, "project.id", request.project.id)
        fields = v.mask(request.update_mask.paths, projects.UPDATABLE)
        changes = project_values(v, request.project, fields)
        v.raise_if_any()
        call.entity_id = str(project_id)
        async with self.ctx.sessions() as db, db.begin():
            row = await projects.update_project(db, call.principal, project_id, changes)
        call.domain_name = row.domain_name
        return project_pb2.UpdateProjectResponse(project=project_to_proto(row))

    @unary(audit=("project", "delete"))
    async def DeleteProject(
        self, request: project_pb2.DeleteProjectRequest, call: Call
    ) -> project_pb2.DeleteProjectResponse:
        v = Violations()
        project_id = _uuid(v, "id", request.id)
        v.raise_if_any()
        call.entity_id = str(project_id)
        async with self.ctx.sessions() as db, db.begin():
            call.domain_name = await projects.delete_project(db, call.principal, project_id)
        return project_pb2.DeleteProjectResponse()

    @unary(audit=("project", "add-members"))
    async def AddProjectMembers(
        self, request: project_pb2.AddProjectMembersRequest, call: Call
    ) -> project_pb2.AddProjectMembersResponse:
        v = Violations()
        project_id = _uuid(v, "project_id", request.project_id)
        user_ids = _user_ids(v, request.user_ids)
        v.raise_if_any()
        call.entity_id = str(project_id)
        async with self.ctx.sessions() as db, db.begin():
            call.domain_name = await projects.add_members(db, call.principal, project_id, user_ids)
        return project_pb2.AddProjectMembersResponse()

    @unary(audit=("project", "remove-members"))
    async def RemoveProjectMembers(
        self, request: project_pb2.RemoveProjectMembersRequest, call: Call
    ) -> project_pb2.RemoveProjectMembersResponse:
        v = Violations()
        project_id = _uuid(v, "project_id", request.project_id)
        user_ids = _user_ids(v, request.user_ids)
        v.raise_if_any()
        call.entity_id = str(project_id)
        async with self.ctx.sessions() as db, db.begin():
            call.domain_name = await projects.remove_members(
                db, call.principal, project_id, user_ids
            )
        return project_pb2.RemoveProjectMembersResponse()

    @unary()
    async def ListProjectMembers(
        self, request: project_pb2.ListProjectMembersRequest, call: Call
    ) -> project_pb2.ListProjectMembersResponse:
        v = Violations()
        project_id = _uuid(v, "project_id", request.project_id)
        size = v.page_size(request.page_size)
        v.raise_if_any()
        async with self.ctx.sessions() as db:
            rows, token = await projects.list_members(
                db, call.principal, project_id, size, request.page_token
            )
        return project_pb2.ListProjectMembersResponse(
            members=[member_to_proto(r) for r in rows], next_page_token=token
        )
