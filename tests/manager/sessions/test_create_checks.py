"""CreateSession refuses bad input precisely and leaves nothing behind."""

from __future__ import annotations

from typing import Any

import grpc
import pytest

from bai.api.common.v1 import session_pb2 as common
from bai.api.manager.v1 import session_pb2 as pb
from bai.manager.db.policies import KeypairResourcePolicyRow
from tests.manager.callers import refused, superadmin
from tests.manager.fixtures import ManagerHandle, unique
from tests.manager.sessions.helpers import (
    GiB,
    agents,
    call,
    create,
    create_request,
    make_group,
    member,
    session_count,
)
from tests.rpc_errors import reason_of, violated_fields

AGENT = {"cpu": "4", "mem": str(8 * GiB)}

CASES: list[tuple[str, dict[str, Any], dict[str, str] | None, str, list[str]]] = [
    ("unknown image", {"image": "cr.test/nope:1"}, None, "IMAGE_NOT_FOUND", []),
    ("negative slot", {}, {"cpu": "-1", "mem": str(GiB)}, "INVALID_FIELD", ["cpu"]),
    ("huge slot", {}, {"cpu": "1e31", "mem": str(GiB)}, "INVALID_FIELD", ["cpu"]),
    ("not a number", {}, {"cpu": "many", "mem": str(GiB)}, "INVALID_FIELD", ["cpu"]),
    ("nan", {}, {"cpu": "NaN", "mem": str(GiB)}, "INVALID_FIELD", ["cpu"]),
    ("unknown slot", {}, {"cpu": "1", "cuda.device": "1"}, "UNKNOWN_RESOURCE_SLOT", []),
    ("above image max", {}, {"cpu": "9", "mem": str(GiB)}, "RESOURCE_REQUEST_OUT_OF_RANGE", []),
    ("below image min", {}, {"cpu": "1", "mem": "1024"}, "RESOURCE_REQUEST_OUT_OF_RANGE", []),
    ("beyond every agent", {}, {"cpu": "1", "mem": str(64 * GiB)}, "NO_CAPACITY", []),
    ("short name", {"name": "ab"}, None, "INVALID_FIELD", ["name"]),
    ("name with a space", {"name": "my session"}, None, "INVALID_FIELD", ["name"]),
    ("name starting with a dash", {"name": "-session"}, None, "INVALID_FIELD", ["name"]),
    ("reserved env", {"environ": {"BAI_X": "1"}}, None, "INVALID_FIELD", ["environ"]),
    ("batch without command", {"type": common.SESSION_TYPE_BATCH}, None, "INVALID_FIELD", []),
    (
        "unknown vfolder",
        {"mounts": [pb.SessionMountRequest(vfolder_name="no-such-folder")]},
        None,
        "NOT_FOUND",
        [],
    ),
    (
        "mount naming no folder",
        {"mounts": [pb.SessionMountRequest(mount_path="/home/work/x")]},
        None,
        "INVALID_FIELD",
        ["mounts[0]"],
    ),
    ("cluster too big", {"cluster_size": 5}, None, "QUOTA_EXCEEDED", []),
    ("bad request id", {"request_id": "not valid!"}, None, "INVALID_FIELD", ["request_id"]),
]


@pytest.mark.parametrize(
    ("fields", "slots", "reason", "bad_fields"),
    [case[1:] for case in CASES],
    ids=[case[0] for case in CASES],
)
async def test_bad_create_is_refused_precisely(
    manager: ManagerHandle,
    channel: grpc.aio.Channel,
    fields: dict[str, Any],
    slots: dict[str, str] | None,
    reason: str,
    bad_fields: list[str],
) -> None:
    group = await make_group(manager)
    user = await member(manager)
    async with agents(channel, group, AGENT):
        error = await refused(create(channel, user, create_request(group, slots, **fields)))
    assert reason_of(error) == reason, error.details()
    for name in bad_fields:
        assert any(name in f for f in violated_fields(error)), violated_fields(error)
    assert await session_count(manager, group) == 0


async def test_scaling_group_not_associated_is_not_allowed(
    manager: ManagerHandle, channel: grpc.aio.Channel
) -> None:
    group = await make_group(manager)
    user = await member(manager)
    request = create_request(group)
    request.scaling_group = unique("other")
    error = await refused(create(channel, user, request))
    assert reason_of(error) == "SCALING_GROUP_NOT_ALLOWED"


async def test_roles_creating_for_others_and_monitors(
    manager: ManagerHandle, channel: grpc.aio.Channel
) -> None:
    group = await make_group(manager)
    user = await member(manager)
    other = await member(manager)
    monitor = await member(manager, "monitor")
    admin = await superadmin(manager)
    request = create_request(group, owner_access_key=other.access_key)
    assert reason_of(await refused(create(channel, user, request))) == "ROLE_FORBIDDEN"
    assert reason_of(await refused(create(channel, monitor, create_request(group)))) == (
        "READ_ONLY_ROLE"
    )
    session = await create(channel, admin, request)
    assert session.owner_access_key == other.access_key
    assert session.user_id == str(other.user_id)


async def test_name_in_use_among_live_sessions(
    manager: ManagerHandle, channel: grpc.aio.Channel
) -> None:
    group = await make_group(manager)
    user = await member(manager)
    first = await create(channel, user, create_request(group, name="twin-1"))
    error = await refused(create(channel, user, create_request(group, name="twin-1")))
    assert reason_of(error) == "ALREADY_EXISTS"
    await call(channel, user, "DestroySession", pb.DestroySessionRequest(session_id=first.id))
    again = await create(channel, user, create_request(group, name="twin-1"))
    assert again.id != first.id


async def test_request_id_replays_and_conflicts(
    manager: ManagerHandle, channel: grpc.aio.Channel
) -> None:
    group = await make_group(manager)
    user = await member(manager)
    request = create_request(group, request_id=unique("req"))
    first = await create(channel, user, request)
    again = await create(channel, user, request)
    assert again.id == first.id
    changed = create_request(group, request_id=request.request_id, tag="other")
    assert reason_of(await refused(create(channel, user, changed))) == "REQUEST_ID_CONFLICT"
    assert await session_count(manager, group) == 1


async def test_pending_limits_of_the_keypair_policy(
    manager: ManagerHandle, channel: grpc.aio.Channel
) -> None:
    policy = unique("kp")
    async with manager.ctx.sessions() as db, db.begin():
        db.add(
            KeypairResourcePolicyRow(
                name=policy,
                max_pending_session_count=1,
                max_pending_session_resource_slots={"cpu": "3"},
            )
        )
    group = await make_group(manager)
    user = await member(manager, keypair_policy=policy)
    too_much = create_request(group, {"cpu": "4", "mem": str(GiB)})
    assert reason_of(await refused(create(channel, user, too_much))) == "QUOTA_EXCEEDED"
    await create(channel, user, create_request(group))
    assert reason_of(await refused(create(channel, user, create_request(group)))) == (
        "QUOTA_EXCEEDED"
    )
    assert await session_count(manager, group) == 1


async def test_someone_elses_session_is_not_found(
    manager: ManagerHandle, channel: grpc.aio.Channel
) -> None:
    group = await make_group(manager)
    owner = await member(manager)
    stranger = await member(manager)
    session = await create(channel, owner, create_request(group))
    for name, request in (
        ("GetSession", pb.GetSessionRequest(session_id=session.id)),
        ("DestroySession", pb.DestroySessionRequest(session_id=session.id)),
        ("RenameSession", pb.RenameSessionRequest(session_id=session.id, new_name="mine-now")),
        ("GetStatusHistory", pb.GetStatusHistoryRequest(session_id=session.id)),
    ):
        error = await refused(call(channel, stranger, name, request))
        assert error.code() == grpc.StatusCode.NOT_FOUND, name
    listed = await call(channel, stranger, "ListSessions", pb.ListSessionsRequest())
    assert session.id not in [s.id for s in listed.sessions]
    error = await refused(call(channel, owner, "GetSession", pb.GetSessionRequest(session_id="x")))
    assert reason_of(error) == "INVALID_FIELD"
