"""KeypairService over a real manager: issue, read, list, update, delete, role limits."""

from __future__ import annotations

import uuid
from typing import Any

import grpc
from sqlalchemy import func, select

from bai.api.manager.v1 import auth_pb2, auth_pb2_grpc, keypair_pb2, keypair_pb2_grpc, user_pb2
from bai.manager.db.audit import AuditLogRow
from bai.manager.db.identity import KeypairRow
from tests.manager.fixtures import ManagerHandle
from tests.manager.test_users import (
    WHOAMI,
    R,
    add_session,
    audit_rows,
    fails,
    make_tenant,
    make_user,
    root,
    set_session_status,
    whoami_refused,
)
from tests.manager.test_users import stub as user_stub
from tests.rpc_errors import violated_fields

SVC = "/bai.api.manager.v1.KeypairService/"


def stub(channel: grpc.aio.Channel) -> keypair_pb2_grpc.KeypairServiceStub:
    return keypair_pb2_grpc.KeypairServiceStub(channel)


def update(access_key: str, paths: list[str], **fields: Any) -> keypair_pb2.UpdateKeypairRequest:
    return keypair_pb2.UpdateKeypairRequest(
        keypair=keypair_pb2.Keypair(access_key=access_key, **fields), update_mask={"paths": paths}
    )


async def test_issue_read_update_delete(manager: ManagerHandle, channel: grpc.aio.Channel) -> None:
    t = await make_tenant(manager, channel)
    keys = stub(channel)
    created = await keys.CreateKeypair(
        keypair_pb2.CreateKeypairRequest(user_id=t.user.id), metadata=t.admin.md
    )
    kp = created.keypair
    assert len(created.secret_key) == 40 and kp.access_key.startswith("AKIA")
    assert (kp.is_active, kp.is_admin, kp.resource_policy, kp.rate_limit) == (
        True,
        False,
        "default",
        30000,
    )
    got = await keys.GetKeypair(
        keypair_pb2.GetKeypairRequest(access_key=kp.access_key), metadata=t.user.md
    )
    assert got.keypair == kp
    assert created.secret_key not in str(got)
    listed = await keys.ListKeypairs(keypair_pb2.ListKeypairsRequest(), metadata=t.user.md)
    assert {k.access_key for k in listed.keypairs} == {t.user.access_key, kp.access_key}
    assert all(k.user_id == t.user.id for k in listed.keypairs)
    upd = await keys.UpdateKeypair(
        update(kp.access_key, ["rate_limit", "is_active"], rate_limit=5, is_active=False),
        metadata=t.admin.md,
    )
    assert (upd.keypair.rate_limit, upd.keypair.is_active) == (5, False)
    inactive = await keys.ListKeypairs(
        keypair_pb2.ListKeypairsRequest(user_id=t.user.id, is_active=False), metadata=t.admin.md
    )
    assert [k.access_key for k in inactive.keypairs] == [kp.access_key]
    await keys.DeleteKeypair(
        keypair_pb2.DeleteKeypairRequest(access_key=kp.access_key), metadata=t.admin.md
    )
    await fails(
        keys.GetKeypair(
            keypair_pb2.GetKeypairRequest(access_key=kp.access_key), metadata=t.admin.md
        ),
        "NOT_FOUND",
        grpc.StatusCode.NOT_FOUND,
    )
    await fails(
        keys.DeleteKeypair(
            keypair_pb2.DeleteKeypairRequest(access_key=kp.access_key), metadata=t.admin.md
        ),
        "NOT_FOUND",
    )


async def test_deactivated_or_deleted_keypair_is_refused_at_once(
    manager: ManagerHandle, channel: grpc.aio.Channel
) -> None:
    t = await make_tenant(manager, channel)
    keys, auth = stub(channel), auth_pb2_grpc.AuthServiceStub(channel)
    await auth.WhoAmI(auth_pb2.WhoAmIRequest(), metadata=t.user.signed(WHOAMI))
    await keys.UpdateKeypair(update(t.user.access_key, ["is_active"]), metadata=t.admin.md)
    assert await whoami_refused(channel, t.user.signed(WHOAMI)) == "KEYPAIR_INACTIVE"
    await auth.WhoAmI(auth_pb2.WhoAmIRequest(), metadata=t.user.md)  # the token still works
    await keys.UpdateKeypair(
        update(t.user.access_key, ["is_active"], is_active=True), metadata=t.admin.md
    )
    await auth.WhoAmI(auth_pb2.WhoAmIRequest(), metadata=t.user.signed(WHOAMI))
    await keys.DeleteKeypair(
        keypair_pb2.DeleteKeypairRequest(access_key=t.user.access_key), metadata=t.admin.md
    )
    assert await whoami_refused(channel, t.user.signed(WHOAMI)) == "UNKNOWN_ACCESS_KEY"


async def test_bad_input_and_references(manager: ManagerHandle, channel: grpc.aio.Channel) -> None:
    t = await make_tenant(manager, channel)
    keys = stub(channel)

    async def count() -> int:
        async with manager.ctx.sessions() as db:
            query = select(func.count()).where(KeypairRow.user_id == uuid.UUID(t.user.id))
            return int(await db.scalar(query) or 0)

    before = await count()
    err = await fails(
        keys.CreateKeypair(
            keypair_pb2.CreateKeypairRequest(user_id="x", rate_limit=-1, resource_policy="bad/"),
            metadata=t.admin.md,
        ),
        "INVALID_FIELD",
        grpc.StatusCode.INVALID_ARGUMENT,
    )
    assert set(violated_fields(err)) == {"user_id", "rate_limit", "resource_policy"}
    err = await fails(
        keys.CreateKeypair(
            keypair_pb2.CreateKeypairRequest(user_id=t.user.id, is_admin=True), metadata=t.admin.md
        ),
        "INVALID_FIELD",
    )
    assert violated_fields(err) == ["is_admin"]
    for request in (
        keypair_pb2.CreateKeypairRequest(user_id=str(uuid.uuid4())),
        keypair_pb2.CreateKeypairRequest(user_id=t.user.id, resource_policy="no-such-policy"),
    ):
        await fails(keys.CreateKeypair(request, metadata=t.admin.md), "REFERENCE_NOT_FOUND")
    err = await fails(
        keys.UpdateKeypair(
            update(t.user.access_key, ["rate_limit", "secret"], rate_limit=0), metadata=t.admin.md
        ),
        "INVALID_FIELD",
    )
    assert set(violated_fields(err)) == {"update_mask", "keypair.rate_limit"}
    await fails(
        keys.UpdateKeypair(
            update(t.user.access_key, ["is_admin"], is_admin=True), metadata=t.admin.md
        ),
        "INVALID_FIELD",
    )
    assert await count() == before
    await user_stub(channel).DeleteUser(
        user_pb2.DeleteUserRequest(id=t.user.id), metadata=t.admin.md
    )
    await fails(
        keys.CreateKeypair(
            keypair_pb2.CreateKeypairRequest(user_id=t.user.id), metadata=t.admin.md
        ),
        "INVALID_STATE",
    )


async def test_role_limits(manager: ManagerHandle, channel: grpc.aio.Channel) -> None:
    t = await make_tenant(manager, channel)
    other = await make_tenant(manager, channel)
    keys = stub(channel)
    # The admin manages keys of their own domain only.
    admin_key = await keys.CreateKeypair(
        keypair_pb2.CreateKeypairRequest(user_id=t.admin.id, is_admin=True), metadata=t.admin.md
    )
    assert admin_key.keypair.is_admin
    await fails(
        keys.CreateKeypair(
            keypair_pb2.CreateKeypairRequest(user_id=other.user.id), metadata=t.admin.md
        ),
        "REFERENCE_NOT_FOUND",
    )
    foreign = keypair_pb2.GetKeypairRequest(access_key=other.user.access_key)
    await fails(keys.GetKeypair(foreign, metadata=t.admin.md), "NOT_FOUND")
    await fails(
        keys.UpdateKeypair(update(other.user.access_key, ["is_active"]), metadata=t.admin.md),
        "NOT_FOUND",
    )
    listed = await keys.ListKeypairs(keypair_pb2.ListKeypairsRequest(), metadata=t.admin.md)
    mine = {t.admin.access_key, t.monitor.access_key, t.user.access_key}
    assert mine <= {k.access_key for k in listed.keypairs}
    assert other.user.access_key not in {k.access_key for k in listed.keypairs}
    filtered = await keys.ListKeypairs(
        keypair_pb2.ListKeypairsRequest(user_id=other.user.id), metadata=t.admin.md
    )
    assert not filtered.keypairs
    boss = await make_user(channel, root(manager), t.domain, R.USER_ROLE_SUPERADMIN)
    await fails(
        keys.UpdateKeypair(update(boss.access_key, ["is_active"]), metadata=t.admin.md),
        "ROLE_FORBIDDEN",
    )
    await fails(
        keys.CreateKeypair(keypair_pb2.CreateKeypairRequest(user_id=boss.id), metadata=t.admin.md),
        "ROLE_FORBIDDEN",
    )
    # The monitor reads the domain's keys but never writes; a user reads their own.
    mine_req = keypair_pb2.GetKeypairRequest(access_key=t.user.access_key)
    await keys.GetKeypair(mine_req, metadata=t.monitor.md)
    await keys.GetKeypair(mine_req, metadata=t.user.signed(SVC + "GetKeypair"))
    await fails(
        keys.GetKeypair(
            keypair_pb2.GetKeypairRequest(access_key=t.admin.access_key), metadata=t.user.md
        ),
        "NOT_FOUND",
    )
    for who, reason in ((t.monitor, "READ_ONLY_ROLE"), (t.user, "ROLE_FORBIDDEN")):
        await fails(
            keys.CreateKeypair(
                keypair_pb2.CreateKeypairRequest(user_id=t.user.id), metadata=who.md
            ),
            reason,
            grpc.StatusCode.PERMISSION_DENIED,
        )
        await fails(
            keys.UpdateKeypair(update(t.user.access_key, ["is_active"]), metadata=who.md), reason
        )
        await fails(
            keys.DeleteKeypair(
                keypair_pb2.DeleteKeypairRequest(access_key=t.user.access_key), metadata=who.md
            ),
            reason,
        )


async def test_delete_refused_while_sessions_live(
    manager: ManagerHandle, channel: grpc.aio.Channel
) -> None:
    t = await make_tenant(manager, channel)
    sid = await add_session(manager, t, "PENDING")
    delete = keypair_pb2.DeleteKeypairRequest(access_key=t.user.access_key)
    await fails(
        stub(channel).DeleteKeypair(delete, metadata=t.admin.md),
        "IN_USE",
        grpc.StatusCode.FAILED_PRECONDITION,
    )
    await set_session_status(manager, sid, "CANCELLED")
    await stub(channel).DeleteKeypair(delete, metadata=t.admin.md)


async def test_replay_paging_and_audit(manager: ManagerHandle, channel: grpc.aio.Channel) -> None:
    t = await make_tenant(manager, channel)
    keys = stub(channel)
    request = keypair_pb2.CreateKeypairRequest(user_id=t.user.id, request_id=str(uuid.uuid4()))
    first = await keys.CreateKeypair(request, metadata=t.admin.md)
    assert await keys.CreateKeypair(request, metadata=t.admin.md) == first
    request.rate_limit = 7
    await fails(keys.CreateKeypair(request, metadata=t.admin.md), "REQUEST_ID_CONFLICT")
    for _ in range(3):
        await keys.CreateKeypair(
            keypair_pb2.CreateKeypairRequest(user_id=t.user.id), metadata=t.admin.md
        )
    seen: list[str] = []
    token = ""
    while True:
        page = await keys.ListKeypairs(
            keypair_pb2.ListKeypairsRequest(user_id=t.user.id, page_size=2, page_token=token),
            metadata=t.monitor.md,
        )
        seen += [k.access_key for k in page.keypairs]
        token = page.next_page_token
        if not token:
            break
    assert len(seen) == len(set(seen)) == 5
    [created] = await audit_rows(manager, SVC + "CreateKeypair", first.keypair.access_key)
    assert (created.status, created.entity_type, created.operation) == (
        "success",
        "keypair",
        "create",
    )
    async with manager.ctx.sessions() as db:
        query = select(AuditLogRow.status, AuditLogRow.reason).where(
            AuditLogRow.request_id == request.request_id
        )
        outcomes = sorted(tuple(r) for r in (await db.execute(query)).all())
    # The replay is answered from the request log and audited like any call.
    assert outcomes == [("failure", "REQUEST_ID_CONFLICT"), ("success", ""), ("success", "")]
