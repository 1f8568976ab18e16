"""UserService: thin edge over bai.manager.admin.users."""

from __future__ import annotations

import asyncio
import ipaddress
import uuid
from typing import Any

from bai.api.manager.v1 import auth_pb2, user_pb2, user_pb2_grpc
from bai.manager.admin import users
from bai.manager.api.convert import ROLE_FROM_PROTO, ROLE_TO_PROTO, timestamp
from bai.manager.api.keypair_service import keypair_to_proto
from bai.manager.api.rpc import Call, unary
from bai.manager.auth.passwords import hash_password
from bai.manager.auth.principal import Role
from bai.manager.context import ManagerContext
from bai.manager.validation import Violations

STATUS_TO_PROTO = {
    users.ACTIVE: user_pb2.USER_STATUS_ACTIVE,
    users.INACTIVE: user_pb2.USER_STATUS_INACTIVE,
    users.DELETED: user_pb2.USER_STATUS_DELETED,
    users.BEFORE_VERIFICATION: user_pb2.USER_STATUS_BEFORE_VERIFICATION,
}
STATUS_FROM_PROTO: dict[int, str] = {v: k for k, v in STATUS_TO_PROTO.items()}
ROLE_BY_NUMBER: dict[int, Role] = {int(k): v for k, v in ROLE_FROM_PROTO.items()}
MAX_ID = 2147483647


def user_to_proto(view: users.UserView) -> user_pb2.User:
    row = view.row
    return user_pb2.User(
        id=str(row.id),
        username=row.username,
        email=row.email,
        full_name=row.full_name,
        description=row.description,
        domain_name=row.domain_name,
        role=ROLE_TO_PROTO.get(Role(row.role), auth_pb2.USER_ROLE_UNSPECIFIED),
        status=STATUS_TO_PROTO.get(row.status, user_pb2.USER_STATUS_UNSPECIFIED),
        need_password_change=row.need_password_change,
        resource_policy=row.resource_policy,
        project_ids=[str(pid) for pid in view.project_ids],
        allowed_client_ip=row.allowed_client_ip,
        sudo_session_enabled=row.sudo_session_enabled,
        container_uid=row.container_uid,
        container_main_gid=row.container_main_gid,
        container_gids=row.container_gids,
        created_at=timestamp(row.created_at),
        modified_at=timestamp(row.modified_at),
    )


def _client_ips(v: Violations, field: str, values: Any) -> list[str]:
    if len(values) > 64:
        v.add(field, "at most 64 entries")
    clean: list[str] = []
    for i, raw in enumerate(values):
        try:
            if "/" in raw:
                net: object = ipaddress.ip_network(raw, strict=False)
            else:
                net = ipaddress.ip_address(raw)
        except ValueError:
            v.add(f"{field}[{i}]", "must be an IPv4/IPv6 address or CIDR network")
            continue
        if str(net) not in clean:
            clean.append(str(net))
    return clean


def _gid(v: Violations, field: str, value: int) -> None:
    v.int_range(field, value, 1, MAX_ID)


def user_values(
    v: Violations, u: user_pb2.User, fields: list[str], *, creating: bool
) -> dict[str, Any]:
    """Validated column values for the named fields of `u`."""
    out: dict[str, Any] = {}
    if "username" in fields:
        v.name("user.username", u.username)
        out["username"] = u.username
    if "email" in fields:
        v.email("user.email", u.email)
        out["email"] = u.email
    if "full_name" in fields:
        v.text("user.full_name", u.full_name, 64)
        out["full_name"] = u.full_name
    if "description" in fields:
        v.text("user.description", u.description, 1024)
        out["description"] = u.description
    if "role" in fields:
        role = u.role or (auth_pb2.USER_ROLE_USER if creating else 0)
        if role not in ROLE_BY_NUMBER:
            v.add("user.role", "must be SUPERADMIN, ADMIN, USER or MONITOR")
        else:
            out["role"] = ROLE_BY_NUMBER[role].value
    if "status" in fields:
        status = u.status or (user_pb2.USER_STATUS_ACTIVE if creating else 0)
        if status not in STATUS_FROM_PROTO or status == user_pb2.USER_STATUS_DELETED:
            v.add("user.status", "must be ACTIVE, INACTIVE or BEFORE_VERIFICATION")
        else:
            out["status"] = STATUS_FROM_PROTO[status]
    if "need_password_change" in fields:
        out["need_password_change"] = u.need_password_change
    if "resource_policy" in fields:
        policy = u.resource_policy or ("default" if creating else "")
        v.name("user.resource_policy", policy)
        out["resource_policy"] = policy
    if "allowed_client_ip" in fields:
        out["allowed_client_ip"] = _client_ips(v, "user.allowed_client_ip", u.allowed_client_ip)
    if "sudo_session_enabled" in fields:
        out["sudo_session_enabled"] = u.sudo_session_enabled
    for name in ("container_uid", "container_main_gid"):
        if name in fields:
            value = getattr(u, name) if u.HasField(name) else None
            if value is not None:
                _gid(v, f"user.{name}", value)
            out[name] = value
    if "container_gids" in fields:
        gids = list(dict.fromkeys(u.container_gids))
        if len(gids) > 32:
            v.add("user.container_gids", "at most 32 distinct entries")
        for i, gid in enumerate(u.container_gids):
            _gid(v, f"user.container_gids[{i}]", gid)
        out["container_gids"] = gids
    return out


def _password(v: Violations, value: str) -> None:
    if not 8 <= len(value) <= 256:
        v.add("password", "must be 8-256 characters")
    elif "\x00" in value:
        v.add("password", "must not contain NUL characters")


def _uuid(v: Violations, field: str, value: str) -> uuid.UUID:
    return v.uuid(field, value) or uuid.UUID(int=0)


class UserServicer(user_pb2_grpc.UserServiceServicer):
    SERVICE = "bai.api.manager.v1.UserService"

    def __init__(self, ctx: ManagerContext) -> None:
        self.ctx = ctx

    @unary(audit=("user", "create"))
    async def CreateUser(
        self, request: user_pb2.CreateUserRequest, call: Call
    ) -> user_pb2.CreateUserResponse:
        v = Violations()
        u = request.user
        v.name("user.domain_name", u.domain_name)
        v.request_id(request.request_id)
        _password(v, request.password)
        fields = ["username", "email", "full_name", "description", "role", "status"]
        fields += ["need_password_change", "resource_policy", "allowed_client_ip"]
        fields += ["sudo_session_enabled", "container_uid", "container_main_gid", "container_gids"]
        values = user_values(v, u, fields, creating=True)
        project_ids = [_uuid(v, f"user.project_ids[{i}]", s) for i, s in enumerate(u.project_ids)]
        project_ids = list(dict.fromkeys(project_ids))
        if len(project_ids) > 100:
            v.add("user.project_ids", "at most 100 distinct projects")
        v.raise_if_any()
        # The user's domain only once created: a refused call stays in the caller's.
        call.entity_id = u.username
        values["domain_name"] = u.domain_name
        values["password_hash"] = await asyncio.to_thread(hash_password, request.password)
        async with self.ctx.sessions() as db, db.begin():
            created = await users.create_user(
                db, call.principal, values, project_ids, request.create_keypair
            )
        call.entity_id, call.domain_name = str(created.user.row.id), created.user.row.domain_name
        reply = user_pb2.CreateUserResponse(user=user_to_proto(created.user))
        if created.keypair is not None:
            reply.keypair.CopyFrom(keypair_to_proto(created.keypair))
            reply.secret_key = created.keypair.secret_key
        return reply

    @unary()
    async def GetUser(
        self, request: user_pb2.GetUserRequest, call: Call
    ) -> user_pb2.GetUserResponse:
        v = Violations()
        user_id = _uuid(v, "id", request.id)
        v.raise_if_any()
        async with self.ctx.sessions() as db:
            view = await users.get_user(db, call.principal, user_id)
        return user_pb2.GetUserResponse(user=user_to_proto(view))

    @unary()
    async def ListUsers(
        self, request: user_pb2.ListUsersRequest, call: Call
    ) -> user_pb2.ListUsersResponse:
        v = Violations()
        size = v.page_size(request.page_size)
        if request.domain_name:
            v.name("domain_name", request.domain_name)
        project_id = v.uuid("project_id", request.project_id) if request.project_id else None
        status = ""
        if request.status:
            if request.status not in STATUS_FROM_PROTO:
                v.add("status", "is not a UserStatus")
            else:
                status = STATUS_FROM_PROTO[request.status]
        role = ""
        if request.role:
            if request.role not in ROLE_BY_NUMBER:
                v.add("role", "is not a UserRole")
            else:
                role = ROLE_BY_NUMBER[request.role].value
        v.raise_if_any()
        f = users.UserFilter(request.domain_name, project_id, status, role)
        async with self.ctx.sessions() as db:
            views, token = await users.list_users(db, call.principal, f, size, request.page_token)
        return user_pb2.ListUsersResponse(
            users=[user_to_proto(view) for view in views], next_page_token=token
        )

    @unary(audit=("user", "update"))
    async def UpdateUser(
        self, request: user_pb2.UpdateUserRequest, call: Call
    ) -> user_pb2.UpdateUserResponse:
        v = Violations()
        user_id = _uuid(v, "user.id", request.user.id)
        paths = list(request.update_mask.paths)
        fields = v.mask(paths, users.UPDATABLE) if paths or not request.password else []
        changes = user_values(v, request.user, fields, creating=False)
        if request.password:
            _password(v, request.password)
        v.raise_if_any()
        call.entity_id = str(user_id)
        password_hash = None
        if request.password:
            password_hash = await asyncio.to_thread(hash_password, request.password)
        async with self.ctx.sessions() as db, db.begin():
            view = await users.update_user(db, call.principal, user_id, changes, password_hash)
        call.domain_name = view.row.domain_name
        if password_hash is not None or view.row.status != users.ACTIVE:
            await self.ctx.authenticator.revoke_user_tokens(user_id)
        return user_pb2.UpdateUserResponse(user=user_to_proto(view))

    @unary(audit=("user", "delete"))
    async def DeleteUser(
        self, request: user_pb2.DeleteUserRequest, call: Call
    ) -> user_pb2.DeleteUserResponse:
        v = Violations()
        user_id = _uuid(v, "id", request.id)
        v.raise_if_any()
        call.entity_id = str(user_id)
        async with self.ctx.sessions() as db, db.begin():
            call.domain_name = await users.delete_user(db, call.principal, user_id, request.purge)
        await self.ctx.authenticator.revoke_user_tokens(user_id)
        return user_pb2.DeleteUserResponse()
