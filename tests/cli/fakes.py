"""Fake admin servicers for CLI tests, on top of tests.client.fakes (auth + domains)."""

from __future__ import annotations

import uuid
from dataclasses import dataclass, field
from typing import Any

import grpc

from bai.api.common.v1 import types_pb2
from bai.api.manager.v1 import (
    audit_pb2,
    audit_pb2_grpc,
    auth_pb2,
    keypair_pb2,
    keypair_pb2_grpc,
    project_pb2,
    project_pb2_grpc,
    resource_policy_pb2,
    resource_policy_pb2_grpc,
    scaling_group_pb2,
    scaling_group_pb2_grpc,
    user_pb2,
    user_pb2_grpc,
)
from tests.client.fakes import Fake, fail, handler


@dataclass
class Admin:
    """In-memory admin state shared by the servicers below."""

    fake: Fake
    projects: dict[str, project_pb2.Project] = field(default_factory=dict)
    members: dict[str, list[str]] = field(default_factory=dict)
    users: dict[str, user_pb2.User] = field(default_factory=dict)
    requests: list[Any] = field(default_factory=list)

    def add_user(self, username: str, role: int = auth_pb2.USER_ROLE_USER) -> user_pb2.User:
        user = user_pb2.User(
            id=str(uuid.uuid4()),
            username=username,
            email=f"{username}@example.com",
            domain_name="default",
            role=role,
            status=user_pb2.USER_STATUS_ACTIVE,  # type: ignore[arg-type]
        )
        self.users[user.id] = user
        return user


class Base:
    def __init__(self, admin: Admin) -> None:
        self.admin = admin
        self.fake = admin.fake


class Projects(Base, project_pb2_grpc.ProjectServiceServicer):
    SERVICE = "bai.api.manager.v1.ProjectService"

    @handler
    def CreateProject(self, request: Any, context: Any) -> Any:
        p = project_pb2.Project()
        p.CopyFrom(request.project)
        p.id, p.is_active = str(uuid.uuid4()), True
        self.admin.projects[p.id] = p
        return project_pb2.CreateProjectResponse(project=p)

    @handler
    def GetProject(self, request: Any, context: Any) -> Any:
        if request.id not in self.admin.projects:
            raise fail(grpc.StatusCode.NOT_FOUND, "project not found")
        return project_pb2.GetProjectResponse(project=self.admin.projects[request.id])

    @handler
    def ListProjects(self, request: Any, context: Any) -> Any:
        found = [
            p
            for p in self.admin.projects.values()
            if not request.domain_name or p.domain_name == request.domain_name
        ]
        return project_pb2.ListProjectsResponse(projects=found)

    @handler
    def AddProjectMembers(self, request: Any, context: Any) -> Any:
        self.admin.members.setdefault(request.project_id, []).extend(request.user_ids)
        return project_pb2.AddProjectMembersResponse()

    @handler
    def RemoveProjectMembers(self, request: Any, context: Any) -> Any:
        current = self.admin.members.get(request.project_id, [])
        self.admin.members[request.project_id] = [u for u in current if u not in request.user_ids]
        return project_pb2.RemoveProjectMembersResponse()

    @handler
    def ListProjectMembers(self, request: Any, context: Any) -> Any:
        users = [self.admin.users[u] for u in self.admin.members.get(request.project_id, [])]
        return project_pb2.ListProjectMembersResponse(
            members=[
                project_pb2.ProjectMember(
                    user_id=u.id, username=u.username, email=u.email, role=u.role
                )
                for u in users
            ]
        )


class Users(Base, user_pb2_grpc.UserServiceServicer):
    SERVICE = "bai.api.manager.v1.UserService"

    @handler
    def CreateUser(self, request: Any, context: Any) -> Any:
        self.admin.requests.append(request)
        user = user_pb2.User()
        user.CopyFrom(request.user)
        user.id = str(uuid.uuid4())
        self.admin.users[user.id] = user
        response = user_pb2.CreateUserResponse(user=user)
        if request.create_keypair:
            response.keypair.access_key = "AKIANEWKEY0000000001"
            response.keypair.user_id = user.id
            response.secret_key = "s" * 40
        return response

    @handler
    def GetUser(self, request: Any, context: Any) -> Any:
        if request.id not in self.admin.users:
            raise fail(grpc.StatusCode.NOT_FOUND, "user not found")
        return user_pb2.GetUserResponse(user=self.admin.users[request.id])

    @handler
    def ListUsers(self, request: Any, context: Any) -> Any:
        self.admin.requests.append(request)
        users = [u for u in self.admin.users.values() if not request.role or u.role == request.role]
        return user_pb2.ListUsersResponse(users=sorted(users, key=lambda u: u.username))


class Keypairs(Base, keypair_pb2_grpc.KeypairServiceServicer):
    SERVICE = "bai.api.manager.v1.KeypairService"

    @handler
    def CreateKeypair(self, request: Any, context: Any) -> Any:
        self.admin.requests.append(request)
        kp = keypair_pb2.Keypair(
            access_key="AKIANEWKEY0000000002",
            user_id=request.user_id,
            is_active=True,
            rate_limit=request.rate_limit or 30000,
        )
        return keypair_pb2.CreateKeypairResponse(keypair=kp, secret_key="k" * 40)


class Policies(Base, resource_policy_pb2_grpc.ResourcePolicyServiceServicer):
    SERVICE = "bai.api.manager.v1.ResourcePolicyService"

    @handler
    def CreateKeypairResourcePolicy(self, request: Any, context: Any) -> Any:
        self.admin.requests.append(request)
        return resource_policy_pb2.CreateKeypairResourcePolicyResponse(policy=request.policy)

    @handler
    def UpdateUserResourcePolicy(self, request: Any, context: Any) -> Any:
        self.admin.requests.append(request)
        return resource_policy_pb2.UpdateUserResourcePolicyResponse(policy=request.policy)


class ScalingGroups(Base, scaling_group_pb2_grpc.ScalingGroupServiceServicer):
    SERVICE = "bai.api.manager.v1.ScalingGroupService"

    @handler
    def AssociateScalingGroup(self, request: Any, context: Any) -> Any:
        self.admin.requests.append(request)
        return scaling_group_pb2.AssociateScalingGroupResponse()

    @handler
    def GetScalingGroup(self, request: Any, context: Any) -> Any:
        opts = scaling_group_pb2.SchedulerOptions(allowed_session_types=["interactive", "batch"])
        opts.pending_timeout.FromSeconds(60)
        return scaling_group_pb2.GetScalingGroupResponse(
            scaling_group=scaling_group_pb2.ScalingGroup(name=request.name, scheduler_opts=opts)
        )

    @handler
    def UpdateScalingGroup(self, request: Any, context: Any) -> Any:
        self.admin.requests.append(request)
        return scaling_group_pb2.UpdateScalingGroupResponse(scaling_group=request.scaling_group)


class Audit(Base, audit_pb2_grpc.AuditLogServiceServicer):
    SERVICE = "bai.api.manager.v1.AuditLogService"

    @handler
    def ListAuditLogs(self, request: Any, context: Any) -> Any:
        self.admin.requests.append(request)
        entry = audit_pb2.AuditLogEntry(
            id="e1",
            domain_name="default",
            entity_type="domain",
            entity_id="research",
            operation="create",
            method="/bai.api.manager.v1.DomainService/CreateDomain",
            status=audit_pb2.AUDIT_LOG_STATUS_SUCCESS,
            actor=types_pb2.Actor(email="admin@bai.local"),
        )
        entry.created_at.FromSeconds(1_700_000_000)
        return audit_pb2.ListAuditLogsResponse(entries=[entry])


def servicers(admin: Admin) -> list[tuple[Any, Any]]:
    return [
        (project_pb2_grpc.add_ProjectServiceServicer_to_server, Projects(admin)),
        (user_pb2_grpc.add_UserServiceServicer_to_server, Users(admin)),
        (keypair_pb2_grpc.add_KeypairServiceServicer_to_server, Keypairs(admin)),
        (resource_policy_pb2_grpc.add_ResourcePolicyServiceServicer_to_server, Policies(admin)),
        (scaling_group_pb2_grpc.add_ScalingGroupServiceServicer_to_server, ScalingGroups(admin)),
        (audit_pb2_grpc.add_AuditLogServiceServicer_to_server, Audit(admin)),
    ]
