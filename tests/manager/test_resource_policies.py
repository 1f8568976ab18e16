"""ResourcePolicyService: CRUD of the three kinds, role limits, IN_USE, paging, audit."""

from __future__ import annotations

import asyncio
import uuid
from dataclasses import dataclass
from typing import Any

import grpc
import pytest
from google.protobuf.duration_pb2 import Duration
from google.protobuf.field_mask_pb2 import FieldMask

from bai.api.common.v1 import types_pb2
from bai.api.manager.v1 import domain_pb2
from bai.api.manager.v1 import resource_policy_pb2 as rp
from bai.api.manager.v1 import resource_policy_pb2_grpc as rp_grpc
from bai.manager.db.policies import KeypairResourcePolicyRow
from tests.manager.callers import (
    Caller,
    audit_rows,
    invoke,
    make_caller,
    make_domain,
    make_project,
    refused,
    superadmin,
)
from tests.manager.fixtures import ManagerHandle, unique
from tests.rpc_errors import reason_of, violated_fields

Stub = rp_grpc.ResourcePolicyServiceStub


@dataclass
class Kind:
    word: str  # "Keypair", "User", "Project"
    message: Any
    sample: dict[str, Any]
    change: dict[str, Any]


KINDS = [
    Kind(
        "Keypair",
        rp.KeypairResourcePolicy,
        {
            "total_resource_slots": types_pb2.ResourceSlots(
                slots={"cpu": "4", "mem": "1073741824"}
            ),
            "default_for_unspecified": rp.DEFAULT_FOR_UNSPECIFIED_LIMITED,
            "max_session_lifetime": Duration(seconds=3600),
            "max_concurrent_sessions": 3,
            "max_pending_session_resource_slots": types_pb2.ResourceSlots(slots={"cpu": "2.50"}),
            "max_priority": 50,
            "max_containers_per_session": 2,
            "idle_timeout": Duration(seconds=600),
            "allowed_vfolder_hosts": {
                "local:volume1": domain_pb2.HostPermissions(
                    permissions=["mount-in-session", "create-vfolder"]
                )
            },
        },
        {"max_concurrent_sessions": 7},
    ),
    Kind(
        "User",
        rp.UserResourcePolicy,
        {"max_vfolder_count": 5, "max_quota_scope_size": 2**40, "max_concurrent_logins": 3},
        {"max_customized_image_count": 9},
    ),
    Kind(
        "Project",
        rp.ProjectResourcePolicy,
        {"max_vfolder_count": 10, "max_network_count": 2},
        {"max_quota_scope_size": 123},
    ),
]
KIND_IDS = [k.word for k in KINDS]


async def _create(
    channel: grpc.aio.Channel, who: Caller, kind: Kind, name: str, **fields: Any
) -> Any:
    request = getattr(rp, f"Create{kind.word}ResourcePolicyRequest")(
        policy=kind.message(name=name, **fields)
    )
    reply = await invoke(channel, Stub, who, f"Create{kind.word}ResourcePolicy", request)
    return reply.policy


async def _get(channel: grpc.aio.Channel, who: Caller, kind: Kind, name: str) -> Any:
    request = getattr(rp, f"Get{kind.word}ResourcePolicyRequest")(name=name)
    return (await invoke(channel, Stub, who, f"Get{kind.word}ResourcePolicy", request)).policy


async def _list_all(
    channel: grpc.aio.Channel, who: Caller, kind: Kind, page_size: int = 100
) -> list[str]:
    names: list[str] = []
    token = ""
    while True:
        request = getattr(rp, f"List{kind.word}ResourcePoliciesRequest")(
            page_size=page_size, page_token=token
        )
        reply = await invoke(channel, Stub, who, f"List{kind.word}ResourcePolicies", request)
        names.extend(p.name for p in reply.policies)
        token = reply.next_page_token
        if not token:
            return names


async def _update(
    channel: grpc.aio.Channel, who: Caller, kind: Kind, name: str, paths: list[str], **fields: Any
) -> Any:
    request = getattr(rp, f"Update{kind.word}ResourcePolicyRequest")(
        policy=kind.message(name=name, **fields), update_mask=FieldMask(paths=paths)
    )
    return (await invoke(channel, Stub, who, f"Update{kind.word}ResourcePolicy", request)).policy


async def _delete(channel: grpc.aio.Channel, who: Caller, kind: Kind, name: str) -> None:
    request = getattr(rp, f"Delete{kind.word}ResourcePolicyRequest")(name=name)
    await invoke(channel, Stub, who, f"Delete{kind.word}ResourcePolicy", request)


@pytest.mark.parametrize("kind", KINDS, ids=KIND_IDS)
async def test_policy_crud(manager: ManagerHandle, channel, kind: Kind):  # type: ignore[no-untyped-def]
    root = await superadmin(manager)
    name = unique("pol")
    created = await _create(channel, root, kind, name, **kind.sample)
    assert created.name == name and created.created_at.seconds > 0
    for field, value in kind.sample.items():
        got = getattr(created, field)
        if field == "max_pending_session_resource_slots":
            assert dict(got.slots) == {"cpu": "2.5"}  # canonical decimal
        elif field == "allowed_vfolder_hosts":
            assert list(got["local:volume1"].permissions) == ["create-vfolder", "mount-in-session"]
        else:
            assert got == value, field
    assert await _get(channel, root, kind, name) == created
    assert name in await _list_all(channel, root, kind)

    updated = await _update(channel, root, kind, name, list(kind.change), **kind.change)
    for field, value in kind.change.items():
        assert getattr(updated, field) == value
    for field, value in kind.sample.items():  # untouched fields stay
        if field not in kind.change and isinstance(value, int):
            assert getattr(updated, field) == value

    await _delete(channel, root, kind, name)
    err = await refused(_get(channel, root, kind, name))
    assert err.code() == grpc.StatusCode.NOT_FOUND and reason_of(err) == "NOT_FOUND"
    err = await refused(_delete(channel, root, kind, name))
    assert reason_of(err) == "NOT_FOUND"
    err = await refused(_update(channel, root, kind, name, list(kind.change), **kind.change))
    assert reason_of(err) == "NOT_FOUND"


async def test_policy_keypair_defaults(manager: ManagerHandle, channel):  # type: ignore[no-untyped-def]
    root = await superadmin(manager)
    created = await _create(channel, root, KINDS[0], unique("pol"))
    assert created.HasField("max_priority") and created.max_priority == 10
    assert created.default_for_unspecified == rp.DEFAULT_FOR_UNSPECIFIED_UNLIMITED
    assert created.max_containers_per_session == 0
    assert created.max_session_lifetime.seconds == 0
    explicit_zero = await _create(channel, root, KINDS[0], unique("pol"), max_priority=0)
    assert explicit_zero.max_priority == 0


@pytest.mark.parametrize("kind", KINDS, ids=KIND_IDS)
async def test_policy_duplicate_name_is_already_exists(manager: ManagerHandle, channel, kind: Kind):  # type: ignore[no-untyped-def]
    root = await superadmin(manager)
    name = unique("pol")
    await _create(channel, root, kind, name)
    err = await refused(_create(channel, root, kind, name))
    assert err.code() == grpc.StatusCode.ALREADY_EXISTS and reason_of(err) == "ALREADY_EXISTS"


async def test_policy_concurrent_creates_never_end_as_internal(manager: ManagerHandle, channel):  # type: ignore[no-untyped-def]
    root = await superadmin(manager)
    name = unique("race")
    results = await asyncio.gather(
        *(_create(channel, root, KINDS[1], name) for _ in range(8)), return_exceptions=True
    )
    errors = [r for r in results if isinstance(r, BaseException)]
    assert len(results) - len(errors) == 1
    for err in errors:
        assert isinstance(err, grpc.aio.AioRpcError)
        assert err.code() == grpc.StatusCode.ALREADY_EXISTS, err.details()


async def test_policy_request_id_replay_and_conflict(manager: ManagerHandle, channel):  # type: ignore[no-untyped-def]
    root = await superadmin(manager)
    name = unique("pol")
    request_id = uuid.uuid4().hex
    request = rp.CreateProjectResourcePolicyRequest(
        policy=rp.ProjectResourcePolicy(name=name, max_vfolder_count=3), request_id=request_id
    )
    first = await invoke(channel, Stub, root, "CreateProjectResourcePolicy", request)
    again = await invoke(channel, Stub, root, "CreateProjectResourcePolicy", request)
    assert again == first
    request.policy.max_vfolder_count = 4
    err = await refused(invoke(channel, Stub, root, "CreateProjectResourcePolicy", request))
    assert reason_of(err) == "REQUEST_ID_CONFLICT"
    assert (await _get(channel, root, KINDS[2], name)).max_vfolder_count == 3
    rows = await audit_rows(manager, name)
    assert rows and rows[0].request_id == request_id


async def test_policy_bad_input_lists_every_field_and_changes_nothing(
    manager: ManagerHandle, channel
):  # type: ignore[no-untyped-def]
    root = await superadmin(manager)
    name = unique("pol")
    bad = rp.CreateKeypairResourcePolicyRequest(
        policy=rp.KeypairResourcePolicy(
            name=name,
            total_resource_slots=types_pb2.ResourceSlots(slots={"cpu": "-1", "BAD KEY": "1"}),
            default_for_unspecified=7,  # type: ignore[arg-type]
            max_session_lifetime=Duration(seconds=1, nanos=5),
            max_concurrent_sessions=-1,
            max_pending_session_count=1_000_001,
            max_priority=101,
            max_containers_per_session=1001,
            idle_timeout=Duration(seconds=365 * 24 * 3600 + 1),
            allowed_vfolder_hosts={"h": domain_pb2.HostPermissions(permissions=["fly"])},
        ),
        request_id="not a valid id!",
    )
    err = await refused(invoke(channel, Stub, root, "CreateKeypairResourcePolicy", bad))
    assert err.code() == grpc.StatusCode.INVALID_ARGUMENT and reason_of(err) == "INVALID_FIELD"
    fields = violated_fields(err)
    for expected in (
        "request_id",
        "policy.default_for_unspecified",
        "policy.max_session_lifetime",
        "policy.max_concurrent_sessions",
        "policy.max_pending_session_count",
        "policy.max_priority",
        "policy.max_containers_per_session",
        "policy.idle_timeout",
        "policy.total_resource_slots[cpu]",
    ):
        assert expected in fields, (expected, fields)
    assert any(f.startswith("policy.allowed_vfolder_hosts") for f in fields)
    async with manager.ctx.sessions() as db:
        assert await db.get(KeypairResourcePolicyRow, name) is None

    for bad_name in ("", "-x", "a" * 65, "has space"):
        err = await refused(_create(channel, root, KINDS[1], bad_name))
        assert violated_fields(err) == ["policy.name"]
    err = await refused(_create(channel, root, KINDS[1], unique("p"), max_quota_scope_size=-1))
    assert violated_fields(err) == ["policy.max_quota_scope_size"]


async def test_policy_update_mask_rules(manager: ManagerHandle, channel):  # type: ignore[no-untyped-def]
    root = await superadmin(manager)
    name = unique("pol")
    await _create(channel, root, KINDS[0], name, max_concurrent_sessions=4)
    for paths in ([], ["name"], ["created_at"], ["nope"]):
        err = await refused(_update(channel, root, KINDS[0], name, paths))
        assert reason_of(err) == "INVALID_FIELD" and "update_mask" in violated_fields(err)
    err = await refused(_update(channel, root, KINDS[0], name, ["max_priority"]))
    assert violated_fields(err) == ["policy.max_priority"]
    err = await refused(_update(channel, root, KINDS[0], name, ["default_for_unspecified"]))
    assert violated_fields(err) == ["policy.default_for_unspecified"]
    assert (await _get(channel, root, KINDS[0], name)).max_concurrent_sessions == 4
    got = await _update(channel, root, KINDS[0], name, ["max_priority"], max_priority=0)
    assert got.max_priority == 0 and got.max_concurrent_sessions == 4


async def test_policy_role_limits(manager: ManagerHandle, channel):  # type: ignore[no-untyped-def]
    root = await superadmin(manager)
    domain = await make_domain(manager)
    kp_policy, user_policy, project_policy, other = (unique("pol") for _ in range(4))
    await _create(channel, root, KINDS[0], kp_policy)
    await _create(channel, root, KINDS[1], user_policy)
    await _create(channel, root, KINDS[2], project_policy)
    for kind in KINDS:
        await _create(channel, root, kind, other)
    project = await make_project(manager, domain, project_policy)
    admin = await make_caller(manager, "admin", domain)
    monitor = await make_caller(manager, "monitor", domain)
    user = await make_caller(
        manager,
        "user",
        domain,
        projects=(project,),
        keypair_policy=kp_policy,
        user_policy=user_policy,
    )

    for who, reason in (
        (admin, "ROLE_FORBIDDEN"),
        (monitor, "READ_ONLY_ROLE"),
        (user, "ROLE_FORBIDDEN"),
    ):
        for kind in KINDS:
            err = await refused(_create(channel, who, kind, unique("pol")))
            assert err.code() == grpc.StatusCode.PERMISSION_DENIED and reason_of(err) == reason
            err = await refused(
                _update(channel, who, kind, other, list(kind.change), **kind.change)
            )
            assert reason_of(err) == reason
            err = await refused(_delete(channel, who, kind, other))
            assert reason_of(err) == reason
            assert (await _get(channel, root, kind, other)).name == other

    for who in (admin, monitor):
        for kind in KINDS:
            assert (await _get(channel, who, kind, other)).name == other
            names = await _list_all(channel, who, kind)
            assert other in names and "default" in names

    assigned = dict(zip(KIND_IDS, (kp_policy, user_policy, project_policy), strict=True))
    for kind in KINDS:
        assert (await _get(channel, user, kind, assigned[kind.word])).name == assigned[kind.word]
        err = await refused(_get(channel, user, kind, other))
        assert err.code() == grpc.StatusCode.NOT_FOUND and reason_of(err) == "NOT_FOUND"
        assert await _list_all(channel, user, kind) == [assigned[kind.word]]


async def test_policy_delete_refused_while_in_use(manager: ManagerHandle, channel):  # type: ignore[no-untyped-def]
    root = await superadmin(manager)
    kp_policy, user_policy, project_policy = (unique("pol") for _ in range(3))
    await _create(channel, root, KINDS[0], kp_policy)
    await _create(channel, root, KINDS[1], user_policy)
    await _create(channel, root, KINDS[2], project_policy)
    await make_project(manager, "default", project_policy)
    # A DELETED user still holds its user policy.
    await make_caller(
        manager, "user", keypair_policy=kp_policy, user_policy=user_policy, status="deleted"
    )
    for kind, name in zip(KINDS, (kp_policy, user_policy, project_policy), strict=True):
        err = await refused(_delete(channel, root, kind, name))
        assert err.code() == grpc.StatusCode.FAILED_PRECONDITION and reason_of(err) == "IN_USE"
        assert (await _get(channel, root, kind, name)).name == name
        failures = [r for r in await audit_rows(manager, name) if r.status == "failure"]
        assert failures[-1].reason == "IN_USE" and failures[-1].operation == "delete"


async def test_policy_paging_has_no_duplicates(manager: ManagerHandle, channel):  # type: ignore[no-untyped-def]
    root = await superadmin(manager)
    created = {unique("page") for _ in range(5)}
    for name in created:
        await _create(channel, root, KINDS[2], name)
    names = await _list_all(channel, root, KINDS[2], page_size=2)
    assert len(names) == len(set(names))
    assert names == sorted(names)
    assert created <= set(names)
    assert names == await _list_all(channel, root, KINDS[2], page_size=1000)

    first = await invoke(
        channel,
        Stub,
        root,
        "ListProjectResourcePolicies",
        rp.ListProjectResourcePoliciesRequest(page_size=1),
    )
    other_kind = rp.ListUserResourcePoliciesRequest(page_size=1, page_token=first.next_page_token)
    for request in (other_kind, rp.ListUserResourcePoliciesRequest(page_token="garbage!")):
        err = await refused(invoke(channel, Stub, root, "ListUserResourcePolicies", request))
        assert reason_of(err) == "INVALID_PAGE_TOKEN"
    for size in (-1, 1001):
        request = rp.ListUserResourcePoliciesRequest(page_size=size)
        err = await refused(invoke(channel, Stub, root, "ListUserResourcePolicies", request))
        assert violated_fields(err) == ["page_size"]


async def test_policy_writes_are_audited(manager: ManagerHandle, channel):  # type: ignore[no-untyped-def]
    root = await superadmin(manager)
    domain = await make_domain(manager)
    user = await make_caller(manager, "user", domain)
    name = unique("pol")
    await _create(channel, root, KINDS[0], name)
    await _update(
        channel, root, KINDS[0], name, ["max_concurrent_sessions"], max_concurrent_sessions=2
    )
    await refused(_delete(channel, user, KINDS[0], name))
    await _delete(channel, root, KINDS[0], name)
    rows = await audit_rows(manager, name)
    assert [(r.operation, r.status, r.reason) for r in rows] == [
        ("create", "success", ""),
        ("update", "success", ""),
        ("delete", "failure", "ROLE_FORBIDDEN"),
        ("delete", "success", ""),
    ]
    assert {r.entity_type for r in rows} == {"keypair_resource_policy"}
    assert rows[0].method == "/bai.api.manager.v1.ResourcePolicyService/CreateKeypairResourcePolicy"
    assert rows[0].actor_user_id == root.user_id and rows[0].domain_name == root.domain
    # A refused write lands in the caller's own domain.
    assert rows[2].actor_user_id == user.user_id and rows[2].domain_name == domain
