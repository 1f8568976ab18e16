"""AuthService: login, logout, whoami, password change."""

from __future__ import annotations

import asyncio

from sqlalchemy import update

from bai.api.manager.v1 import auth_pb2, auth_pb2_grpc
from bai.common.errors import Unauthenticated
from bai.manager.api.convert import ROLE_TO_PROTO, timestamp_from_epoch
from bai.manager.api.rpc import Call, unary
from bai.manager.auth.passwords import hash_password, verify_password
from bai.manager.auth.principal import Principal
from bai.manager.context import ManagerContext
from bai.manager.db.identity import UserRow
from bai.manager.validation import Violations


def whoami(p: Principal) -> auth_pb2.WhoAmIResponse:
    return auth_pb2.WhoAmIResponse(
        user_id=str(p.user_id),
        username=p.username,
        email=p.email,
        role=ROLE_TO_PROTO[p.role],
        domain_name=p.domain_name,
        access_key=p.access_key,
        project_ids=sorted(str(pid) for pid in p.project_ids),
    )


class AuthServicer(auth_pb2_grpc.AuthServiceServicer):
    SERVICE = "bai.api.manager.v1.AuthService"

    def __init__(self, ctx: ManagerContext) -> None:
        self.ctx = ctx

    @unary(public=True)
    async def Login(self, request: auth_pb2.LoginRequest, call: Call) -> auth_pb2.LoginResponse:
        v = Violations()
        v.text("username", request.username, 254, required=True)
        v.text("password", request.password, 256, required=True)
        if request.ttl_seconds:
            v.int_range("ttl_seconds", request.ttl_seconds, 60, 86400)
        v.raise_if_any()
        found = await self.ctx.lookup.by_login_name(request.username)
        # Hash even for unknown users so timing does not reveal which exist.
        stored = found[1] if found else hash_password("")
        ok = await asyncio.to_thread(verify_password, request.password, stored)
        if found is None or not ok:
            raise Unauthenticated("wrong username or password", reason="LOGIN_FAILED")
        identity = found[0]
        if identity.user_status != "active":
            raise Unauthenticated(f"user is {identity.user_status}", reason="USER_INACTIVE")
        ttl = request.ttl_seconds or self.ctx.config.auth.token_ttl_seconds
        token, expires = await self.ctx.authenticator.issue_token(identity.principal.user_id, ttl)
        return auth_pb2.LoginResponse(
            token=token,
            expires_at=timestamp_from_epoch(expires),
            identity=whoami(identity.principal),
        )

    @unary()
    async def Logout(self, request: auth_pb2.LogoutRequest, call: Call) -> auth_pb2.LogoutResponse:
        scheme, _, token = call.metadata.get("authorization", "").partition(" ")
        if scheme.lower() == "bearer" and token:
            await self.ctx.authenticator.revoke_token(token.strip())
        return auth_pb2.LogoutResponse()

    @unary()
    async def WhoAmI(self, request: auth_pb2.WhoAmIRequest, call: Call) -> auth_pb2.WhoAmIResponse:
        return whoami(call.principal)

    @unary(audit=("user", "change-password"))
    async def ChangePassword(
        self, request: auth_pb2.ChangePasswordRequest, call: Call
    ) -> auth_pb2.ChangePasswordResponse:
        v = Violations()
        v.text("old_password", request.old_password, 256, required=True)
        if not 8 <= len(request.new_password) <= 256:
            v.add("new_password", "must be 8-256 characters")
        v.raise_if_any()
        call.entity_id = str(call.principal.user_id)
        found = await self.ctx.lookup.by_login_name(call.principal.username)
        if found is None or not await asyncio.to_thread(
            verify_password, request.old_password, found[1]
        ):
            raise Unauthenticated("old password is wrong", reason="LOGIN_FAILED")
        new_hash = await asyncio.to_thread(hash_password, request.new_password)
        async with self.ctx.sessions() as db, db.begin():
            await db.execute(
                update(UserRow)
                .where(UserRow.id == call.principal.user_id)
                .values(password_hash=new_hash, need_password_change=False)
            )
        await self.ctx.authenticator.revoke_user_tokens(call.principal.user_id)
        return auth_pb2.ChangePasswordResponse()
