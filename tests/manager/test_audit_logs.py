"""AuditLogService: who reads which entries, filters, ordering and paging."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime, timedelta
from typing import Any

import grpc
from google.protobuf.timestamp_pb2 import Timestamp

from bai.api.manager.v1 import audit_pb2
from bai.api.manager.v1 import audit_pb2_grpc as audit_grpc
from bai.api.manager.v1 import scaling_group_pb2 as sg
from bai.api.manager.v1 import scaling_group_pb2_grpc as sg_grpc
from tests.manager.callers import (
    Caller,
    invoke,
    make_caller,
    make_domain,
    refused,
    superadmin,
)
from tests.manager.fixtures import ManagerHandle, unique
from tests.rpc_errors import reason_of, violated_fields

Stub = audit_grpc.AuditLogServiceStub
CREATE_SG = "/bai.api.manager.v1.ScalingGroupService/CreateScalingGroup"


async def _entries(
    channel: grpc.aio.Channel, who: Caller, page_size: int = 1000, **filters: Any
) -> list[audit_pb2.AuditLogEntry]:
    entries: list[audit_pb2.AuditLogEntry] = []
    token = ""
    while True:
        request = audit_pb2.ListAuditLogsRequest(page_size=page_size, page_token=token, **filters)
        reply = await invoke(channel, Stub, who, "ListAuditLogs", request)
        entries.extend(reply.entries)
        token = reply.next_page_token
        if not token:
            return entries


async def _create_group(channel: grpc.aio.Channel, who: Caller, name: str) -> None:
    request = sg.CreateScalingGroupRequest(scaling_group=sg.ScalingGroup(name=name))
    await invoke(channel, sg_grpc.ScalingGroupServiceStub, who, "CreateScalingGroup", request)


async def _tenant(manager: ManagerHandle, channel: grpc.aio.Channel) -> dict[str, Any]:
    """A fresh domain whose admin, monitor and user each made one refused write."""
    domain = await make_domain(manager)
    people = {
        role: await make_caller(manager, role, domain) for role in ("admin", "monitor", "user")
    }
    for who in people.values():
        await refused(_create_group(channel, who, unique("sg")))
    return {"domain": domain, **people}


async def test_each_role_reads_its_own_scope(manager: ManagerHandle, channel):  # type: ignore[no-untyped-def]
    root = await superadmin(manager)
    one, two = await _tenant(manager, channel), await _tenant(manager, channel)
    by_root = await _entries(channel, root, domain_name=one["domain"])
    assert len(by_root) == 3
    assert {e.actor.user_id for e in by_root} == {
        str(one[r].user_id) for r in ("admin", "monitor", "user")
    }
    everything = await _entries(channel, root)
    assert {one["domain"], two["domain"]} <= {e.domain_name for e in everything}

    for role in ("admin", "monitor"):
        seen = await _entries(channel, one[role])
        assert seen and {e.domain_name for e in seen} == {one["domain"]}
        assert len(seen) == 3
        # Asking for another domain, or another domain's user, yields nothing.
        assert await _entries(channel, one[role], domain_name=two["domain"]) == []
        assert await _entries(channel, one[role], user_id=str(two["user"].user_id)) == []
        assert await _entries(channel, one[role], user_id=str(root.user_id)) == []
        mine = await _entries(channel, one[role], user_id=str(one["user"].user_id))
        assert [e.actor.user_id for e in mine] == [str(one["user"].user_id)]

    seen = await _entries(channel, one["user"])
    assert [e.actor.user_id for e in seen] == [str(one["user"].user_id)]
    assert await _entries(channel, one["user"], user_id=str(one["admin"].user_id)) == []


async def test_entry_fields(manager: ManagerHandle, channel):  # type: ignore[no-untyped-def]
    root = await superadmin(manager)
    tenant = await _tenant(manager, channel)
    user: Caller = tenant["user"]
    (failed,) = await _entries(channel, root, user_id=str(user.user_id))
    assert failed.status == audit_pb2.AUDIT_LOG_STATUS_FAILURE
    assert failed.reason == "ROLE_FORBIDDEN"
    assert failed.method == CREATE_SG and failed.operation == "create"
    assert failed.entity_type == "scaling_group" and failed.entity_id.startswith("sg-")
    assert failed.actor.email == user.email and failed.actor.access_key == user.access_key
    assert failed.domain_name == tenant["domain"]
    assert failed.duration.ToNanoseconds() > 0 and uuid.UUID(failed.id)
    assert failed.acted_as == ""

    name = unique("sg")
    request_id = uuid.uuid4().hex
    request = sg.CreateScalingGroupRequest(
        scaling_group=sg.ScalingGroup(name=name), request_id=request_id
    )
    await invoke(channel, sg_grpc.ScalingGroupServiceStub, root, "CreateScalingGroup", request)
    latest = (await _entries(channel, root, page_size=1, user_id=str(root.user_id)))[0]
    assert latest.entity_id == name and latest.status == audit_pb2.AUDIT_LOG_STATUS_SUCCESS
    assert latest.reason == "" and latest.request_id == request_id


async def test_filters_and_time_window(manager: ManagerHandle, channel):  # type: ignore[no-untyped-def]
    root = await superadmin(manager)
    before = datetime.now(UTC) - timedelta(seconds=1)
    tenant = await _tenant(manager, channel)
    after = datetime.now(UTC) + timedelta(seconds=1)
    domain = tenant["domain"]

    def ts(at: datetime) -> Timestamp:
        stamp = Timestamp()
        stamp.FromDatetime(at)
        return stamp

    assert len(await _entries(channel, root, domain_name=domain, entity_type="scaling_group")) == 3
    assert await _entries(channel, root, domain_name=domain, entity_type="user") == []
    assert (
        len(await _entries(channel, root, domain_name=domain, since=ts(before), until=ts(after)))
        == 3
    )
    assert await _entries(channel, root, domain_name=domain, since=ts(after)) == []
    assert await _entries(channel, root, domain_name=domain, until=ts(before)) == []

    bad: list[tuple[dict[str, Any], str]] = [
        ({"since": ts(after), "until": ts(before)}, "until"),
        ({"since": ts(before), "until": ts(before)}, "until"),
        ({"user_id": "not-a-uuid"}, "user_id"),
        ({"domain_name": "-bad"}, "domain_name"),
        ({"entity_type": "x" * 65}, "entity_type"),
        ({"since": Timestamp(seconds=10**12)}, "since"),
        ({"page_size": 1001}, "page_size"),
    ]
    for filters, field in bad:
        request = audit_pb2.ListAuditLogsRequest(**filters)
        err = await refused(invoke(channel, Stub, root, "ListAuditLogs", request))
        assert err.code() == grpc.StatusCode.INVALID_ARGUMENT, filters
        assert reason_of(err) == "INVALID_FIELD" and violated_fields(err) == [field]


async def test_newest_first_paging_without_duplicates(manager: ManagerHandle, channel):  # type: ignore[no-untyped-def]
    root = await superadmin(manager)
    tenant = await _tenant(manager, channel)
    for _ in range(4):
        await refused(_create_group(channel, tenant["admin"], unique("sg")))
    whole = await _entries(channel, root, domain_name=tenant["domain"])
    paged = await _entries(channel, root, page_size=2, domain_name=tenant["domain"])
    assert len(paged) == 7 and [e.id for e in paged] == [e.id for e in whole]
    assert len({e.id for e in paged}) == 7
    keys = [(e.created_at.ToDatetime(), e.id) for e in paged]
    assert keys == sorted(keys, reverse=True)

    first = await invoke(
        channel,
        Stub,
        root,
        "ListAuditLogs",
        audit_pb2.ListAuditLogsRequest(page_size=1, domain_name=tenant["domain"]),
    )
    assert first.next_page_token
    # The token is bound to its filters and to the caller.
    for who, request in (
        (root, audit_pb2.ListAuditLogsRequest(page_token=first.next_page_token)),
        (
            tenant["admin"],
            audit_pb2.ListAuditLogsRequest(
                page_token=first.next_page_token, domain_name=tenant["domain"]
            ),
        ),
        (root, audit_pb2.ListAuditLogsRequest(page_token="bm90LWEtdG9rZW4")),
    ):
        err = await refused(invoke(channel, Stub, who, "ListAuditLogs", request))
        assert reason_of(err) == "INVALID_PAGE_TOKEN"
