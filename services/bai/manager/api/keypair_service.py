"""KeypairService: thin edge over bai.manager.admin.keypairs."""

from __future__ import annotations

import uuid
from typing import Any

from bai.api.manager.v1 import keypair_pb2, keypair_pb2_grpc
from bai.common.signing import ACCESS_KEY_PATTERN
from bai.manager.admin import keypairs
from bai.manager.api.convert import timestamp
from bai.manager.api.rpc import Call, unary
from bai.manager.context import ManagerContext
from bai.manager.db.identity import KeypairRow
from bai.manager.validation import Violations

MAX_RATE_LIMIT = 1_000_000_000


def keypair_to_proto(row: KeypairRow) -> keypair_pb2.Keypair:
    """Never carries the secret key."""
    return keypair_pb2.Keypair(
        access_key=row.access_key,
        user_id=str(row.user_id),
        is_active=row.is_active,
        is_admin=row.is_admin,
        resource_policy=row.resource_policy,
        rate_limit=row.rate_limit,
        num_queries=row.num_queries,
        last_used_at=timestamp(row.last_used_at),
        created_at=timestamp(row.created_at),
    )


def _access_key(v: Violations, field: str, value: str) -> None:
    if not ACCESS_KEY_PATTERN.match(value):
        v.add(field, "must be 16-32 characters of [A-Z0-9]")


class KeypairServicer(keypair_pb2_grpc.KeypairServiceServicer):
    SERVICE = "bai.api.manager.v1.KeypairService"

    def __init__(self, ctx: ManagerContext) -> None:
        self.ctx = ctx

    @unary(audit=("keypair", "create"))
    async def CreateKeypair(
        self, request: keypair_pb2.CreateKeypairRequest, call: Call
    ) -> keypair_pb2.CreateKeypairResponse:
        v = Violations()
        user_id = v.uuid("user_id", request.user_id)
        v.request_id(request.request_id)
        policy = request.resource_policy or "default"
        v.name("resource_policy", policy)
        if request.rate_limit:
            v.int_range("rate_limit", request.rate_limit, 1, MAX_RATE_LIMIT)
        v.raise_if_any()
        assert user_id is not None
        call.entity_id = str(user_id)
        async with self.ctx.sessions() as db, db.begin():
            created = await keypairs.create_keypair(
                db, call.principal, user_id, request.is_admin, policy, request.rate_limit
            )
        row = created.keypair
        call.entity_id, call.domain_name = row.access_key, created.owner.domain_name
        return keypair_pb2.CreateKeypairResponse(
            keypair=keypair_to_proto(row), secret_key=row.secret_key
        )

    @unary()
    async def GetKeypair(
        self, request: keypair_pb2.GetKeypairRequest, call: Call
    ) -> keypair_pb2.GetKeypairResponse:
        v = Violations()
        _access_key(v, "access_key", request.access_key)
        v.raise_if_any()
        async with self.ctx.sessions() as db:
            row = await keypairs.get_keypair(db, call.principal, request.access_key)
        return keypair_pb2.GetKeypairResponse(keypair=keypair_to_proto(row))

    @unary()
    async def ListKeypairs(
        self, request: keypair_pb2.ListKeypairsRequest, call: Call
    ) -> keypair_pb2.ListKeypairsResponse:
        v = Violations()
        size = v.page_size(request.page_size)
        user_id: uuid.UUID | None = None
        if request.user_id:
            user_id = v.uuid("user_id", request.user_id)
        is_active = request.is_active if request.HasField("is_active") else None
        v.raise_if_any()
        async with self.ctx.sessions() as db:
            rows, token = await keypairs.list_keypairs(
                db, call.principal, user_id, is_active, size, request.page_token
            )
        return keypair_pb2.ListKeypairsResponse(
            keypairs=[keypair_to_proto(r) for r in rows], next_page_token=token
        )

    @unary(audit=("keypair", "update"))
    async def UpdateKeypair(
        self, request: keypair_pb2.UpdateKeypairRequest, call: Call
    ) -> keypair_pb2.UpdateKeypairResponse:
        v = Violations()
        k = request.keypair
        _access_key(v, "keypair.access_key", k.access_key)
        fields = v.mask(request.update_mask.paths, keypairs.UPDATABLE)
        changes: dict[str, Any] = {}
        if "is_active" in fields:
            changes["is_active"] = k.is_active
        if "is_admin" in fields:
            changes["is_admin"] = k.is_admin
        if "resource_policy" in fields:
            v.name("keypair.resource_policy", k.resource_policy)
            changes["resource_policy"] = k.resource_policy
        if "rate_limit" in fields:
            v.int_range("keypair.rate_limit", k.rate_limit, 1, MAX_RATE_LIMIT)
            changes["rate_limit"] = k.rate_limit
        v.raise_if_any()
        call.entity_id = k.access_key
        async with self.ctx.sessions() as db, db.begin():
            updated = await keypairs.update_keypair(db, call.principal, k.access_key, changes)
        call.domain_name = updated.owner.domain_name
        return keypair_pb2.UpdateKeypairResponse(keypair=keypair_to_proto(updated.keypair))

    @unary(audit=("keypair", "delete"))
    async def DeleteKeypair(
        self, request: keypair_pb2.DeleteKeypairRequest, call: Call
    ) -> keypair_pb2.DeleteKeypairResponse:
        v = Violations()
        _access_key(v, "access_key", request.access_key)
        v.raise_if_any()
        call.entity_id = request.access_key
        async with self.ctx.sessions() as db, db.begin():
            call.domain_name = await keypairs.delete_keypair(db, call.principal, request.access_key)
        return keypair_pb2.DeleteKeypairResponse()
