"""ScalingGroupService: CRUD, role limits, associations, allowed groups, IN_USE, audit."""

from __future__ import annotations

import uuid
from typing import Any

import grpc
import pytest
from google.protobuf.duration_pb2 import Duration
from google.protobuf.field_mask_pb2 import FieldMask
from sqlalchemy import select

from bai.api.manager.v1 import scaling_group_pb2 as sg
from bai.api.manager.v1 import scaling_group_pb2_grpc as sg_grpc
from bai.manager.db.compute import AgentRow, SessionRow
from bai.manager.db.identity import ProjectRow
from bai.manager.db.policies import ScalingGroupForDomainRow, ScalingGroupRow
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

Stub = sg_grpc.ScalingGroupServiceStub


async def _create(channel: grpc.aio.Channel, who: Caller, name: str, **fields: Any) -> Any:
    request = sg.CreateScalingGroupRequest(scaling_group=sg.ScalingGroup(name=name, **fields))
    return (await invoke(channel, Stub, who, "CreateScalingGroup", request)).scaling_group


async def _get(channel: grpc.aio.Channel, who: Caller, name: str) -> Any:
    request = sg.GetScalingGroupRequest(name=name)
    return (await invoke(channel, Stub, who, "GetScalingGroup", request)).scaling_group


async def _list(
    channel: grpc.aio.Channel, who: Caller, domain_name: str = "", page_size: int = 100
) -> list[str]:
    names: list[str] = []
    token = ""
    while True:
        request = sg.ListScalingGroupsRequest(
            page_size=page_size, page_token=token, domain_name=domain_name
        )
        reply = await invoke(channel, Stub, who, "ListScalingGroups", request)
        names.extend(g.name for g in reply.scaling_groups)
        token = reply.next_page_token
        if not token:
            return names


async def _update(
    channel: grpc.aio.Channel, who: Caller, name: str, paths: list[str], **fields: Any
) -> Any:
    request = sg.UpdateScalingGroupRequest(
        scaling_group=sg.ScalingGroup(name=name, **fields), update_mask=FieldMask(paths=paths)
    )
    return (await invoke(channel, Stub, who, "UpdateScalingGroup", request)).scaling_group


async def _delete(channel: grpc.aio.Channel, who: Caller, name: str) -> None:
    await invoke(channel, Stub, who, "DeleteScalingGroup", sg.DeleteScalingGroupRequest(name=name))


async def _associate(
    channel: grpc.aio.Channel, who: Caller, name: str, undo: bool = False, **target: Any
) -> None:
    verb = "Disassociate" if undo else "Associate"
    request = getattr(sg, f"{verb}ScalingGroupRequest")(scaling_group_name=name, **target)
    await invoke(channel, Stub, who, f"{verb}ScalingGroup", request)


async def _allowed(channel: grpc.aio.Channel, who: Caller, project_id: str = "") -> dict[str, Any]:
    request = sg.ListAllowedScalingGroupsRequest(project_id=project_id)
    reply = await invoke(channel, Stub, who, "ListAllowedScalingGroups", request)
    return {g.name: g for g in reply.scaling_groups}


async def test_scaling_group_crud(manager: ManagerHandle, channel):  # type: ignore[no-untyped-def]
    root = await superadmin(manager)
    name = unique("sg")
    created = await _create(
        channel,
        root,
        name,
        description="GPU nodes",
        is_active=False,  # ignored on create
        is_public=True,
        wsproxy_addr="http://127.0.0.1:10200",
        driver_opts={"region": "eu"},
        scheduler=sg.SCHEDULER_TYPE_DRF,
        scheduler_opts=sg.SchedulerOptions(
            allowed_session_types=["batch"],
            pending_timeout=Duration(seconds=300),
            agent_selection_strategy=sg.AGENT_SELECTION_STRATEGY_CONCENTRATED,
            allow_fractional_resource_fragmentation=False,
        ),
        use_host_network=True,
    )
    assert created.is_active and created.driver == "static" and created.created_at.seconds > 0
    assert created.scheduler == sg.SCHEDULER_TYPE_DRF
    assert list(created.scheduler_opts.allowed_session_types) == ["batch"]
    assert created.scheduler_opts.pending_timeout.seconds == 300
    assert not created.scheduler_opts.allow_fractional_resource_fragmentation
    assert dict(created.driver_opts) == {"region": "eu"} and created.use_host_network
    assert await _get(channel, root, name) == created
    assert name in await _list(channel, root)

    updated = await _update(
        channel,
        root,
        name,
        ["description", "is_active", "scheduler_opts"],
        description="renamed",
        is_active=False,
        scheduler_opts=sg.SchedulerOptions(
            allowed_session_types=["interactive", "inference"],
            allow_fractional_resource_fragmentation=True,
            agent_selection_strategy=sg.AGENT_SELECTION_STRATEGY_ROUND_ROBIN,
        ),
    )
    assert updated.description == "renamed" and not updated.is_active
    assert updated.scheduler_opts.pending_timeout.seconds == 0  # replaced as a whole
    assert updated.scheduler == sg.SCHEDULER_TYPE_DRF and updated.use_host_network

    await _delete(channel, root, name)
    for call in (_get(channel, root, name), _delete(channel, root, name)):
        err = await refused(call)
        assert err.code() == grpc.StatusCode.NOT_FOUND and reason_of(err) == "NOT_FOUND"


async def test_create_defaults_and_single_default(manager: ManagerHandle, channel):  # type: ignore[no-untyped-def]
    root = await superadmin(manager)
    first, second = unique("sg"), unique("sg")
    created = await _create(channel, root, first, is_default=True)
    assert created.scheduler == sg.SCHEDULER_TYPE_FIFO
    opts = created.scheduler_opts
    assert list(opts.allowed_session_types) == ["interactive", "batch"]
    assert opts.agent_selection_strategy == sg.AGENT_SELECTION_STRATEGY_DISPERSED
    assert opts.HasField("allow_fractional_resource_fragmentation")
    assert opts.allow_fractional_resource_fragmentation
    await _create(channel, root, second, is_default=True)
    assert not (await _get(channel, root, first)).is_default
    await _update(channel, root, first, ["is_default"], is_default=True)
    async with manager.ctx.sessions() as db:
        defaults = (
            await db.execute(select(ScalingGroupRow.name).where(ScalingGroupRow.is_default))
        ).scalars()
        assert list(defaults) == [first]
    # Leave the bootstrap default as it was for other tests.
    await _update(channel, root, "default", ["is_default"], is_default=True)


async def test_bad_input_lists_fields_and_changes_nothing(manager: ManagerHandle, channel):  # type: ignore[no-untyped-def]
    root = await superadmin(manager)
    name = unique("sg")
    err = await refused(
        _create(
            channel,
            root,
            name,
            description="x" * 1025,
            wsproxy_addr="ftp://host",
            driver="Bad Driver",
            driver_opts={f"k{i}": "v" for i in range(65)},
            scheduler=42,
            scheduler_opts=sg.SchedulerOptions(
                allowed_session_types=["batch", "batch", "system"],
                pending_timeout=Duration(seconds=-1),
                agent_selection_strategy=99,  # type: ignore[arg-type]
            ),
        )
    )
    assert err.code() == grpc.StatusCode.INVALID_ARGUMENT and reason_of(err) == "INVALID_FIELD"
    fields = violated_fields(err)
    for expected in (
        "scaling_group.description",
        "scaling_group.wsproxy_addr",
        "scaling_group.driver",
        "scaling_group.driver_opts",
        "scaling_group.scheduler",
        "scaling_group.scheduler_opts.allowed_session_types",
        "scaling_group.scheduler_opts.pending_timeout",
        "scaling_group.scheduler_opts.agent_selection_strategy",
    ):
        assert expected in fields, (expected, fields)
    async with manager.ctx.sessions() as db:
        assert await db.get(ScalingGroupRow, name) is None
    for addr in ("http://host", "https://h:99999", "http://u:p@h:1", "http://h:1/path"):
        err = await refused(_create(channel, root, unique("sg"), wsproxy_addr=addr))
        assert violated_fields(err) == ["scaling_group.wsproxy_addr"], addr
    assert (await _create(channel, root, unique("sg"), wsproxy_addr="https://[::1]:443")).name

    await _create(channel, root, name)
    for paths in ([], ["name"], ["created_at"]):
        err = await refused(_update(channel, root, name, paths))
        assert "update_mask" in violated_fields(err)
    err = await refused(_update(channel, root, name, ["scheduler_opts"]))
    assert "scaling_group.scheduler_opts.allowed_session_types" in violated_fields(err)
    err = await refused(_update(channel, root, name, ["driver", "scheduler"]))
    assert violated_fields(err) == ["scaling_group.driver", "scaling_group.scheduler"]
    err = await refused(_create(channel, root, name))
    assert reason_of(err) == "ALREADY_EXISTS"
    assert (await _get(channel, root, name)).driver == "static"


async def test_request_id_replay_and_conflict(manager: ManagerHandle, channel):  # type: ignore[no-untyped-def]
    root = await superadmin(manager)
    request = sg.CreateScalingGroupRequest(
        scaling_group=sg.ScalingGroup(name=unique("sg")), request_id=str(uuid.uuid4())
    )
    first = await invoke(channel, Stub, root, "CreateScalingGroup", request)
    assert await invoke(channel, Stub, root, "CreateScalingGroup", request) == first
    request.scaling_group.description = "different"
    err = await refused(invoke(channel, Stub, root, "CreateScalingGroup", request))
    assert reason_of(err) == "REQUEST_ID_CONFLICT"


async def test_role_limits(manager: ManagerHandle, channel):  # type: ignore[no-untyped-def]
    root = await superadmin(manager)
    domain = await make_domain(manager)
    mine, theirs = unique("sg"), unique("sg")
    await _create(channel, root, mine, driver_opts={"secret": "x"})
    await _create(channel, root, theirs)
    await _associate(channel, root, mine, domain_name=domain)
    admin = await make_caller(manager, "admin", domain)
    monitor = await make_caller(manager, "monitor", domain)
    user = await make_caller(manager, "user", domain)

    for who in (admin, monitor):
        assert dict((await _get(channel, who, mine)).driver_opts) == {"secret": "x"}
        err = await refused(_get(channel, who, theirs))
        assert err.code() == grpc.StatusCode.NOT_FOUND
        assert await _list(channel, who) == [mine]
        assert await _list(channel, who, domain_name=domain) == [mine]
        assert await _list(channel, who, domain_name="default") == []
    assert await _list(channel, root, domain_name=domain) == [mine]

    for call in (_get(channel, user, mine), _list(channel, user)):
        err = await refused(call)
        assert (
            err.code() == grpc.StatusCode.PERMISSION_DENIED and reason_of(err) == "ROLE_FORBIDDEN"
        )

    for who, reason in (
        (admin, "ROLE_FORBIDDEN"),
        (monitor, "READ_ONLY_ROLE"),
        (user, "ROLE_FORBIDDEN"),
    ):
        writes = (
            _create(channel, who, unique("sg")),
            _update(channel, who, mine, ["description"], description="x"),
            _delete(channel, who, mine),
            _associate(channel, who, theirs, domain_name=domain),
            _associate(channel, who, mine, undo=True, domain_name=domain),
        )
        for write in writes:
            assert reason_of(await refused(write)) == reason
    assert await _list(channel, admin) == [mine]
    # The refused associate was logged in the caller's domain, not the target's.
    failed = [r for r in await audit_rows(manager, theirs) if r.operation == "associate"]
    assert {r.domain_name for r in failed} == {domain}


async def test_associations_and_allowed_groups(manager: ManagerHandle, channel):  # type: ignore[no-untyped-def]
    root = await superadmin(manager)
    d1, d2 = await make_domain(manager), await make_domain(manager)
    project = await make_project(manager, d2)
    u1 = await make_caller(manager, "user", d1)
    u2 = await make_caller(manager, "user", d2, projects=(project,))
    a1 = await make_caller(manager, "admin", d1)
    shared, private, inactive, by_key, by_project = (unique("sg") for _ in range(5))
    await _create(channel, root, shared, is_public=True, driver="k8s", driver_opts={"a": "b"})
    await _create(channel, root, private, is_public=False)
    for name in (inactive, by_key, by_project):
        await _create(channel, root, name, is_public=True)
    await _update(channel, root, inactive, ["is_active"], is_active=False)
    for name in (shared, private, inactive):
        await _associate(channel, root, name, domain_name=d1)
    await _associate(channel, root, shared, domain_name=d1)  # idempotent
    await _associate(channel, root, by_key, access_key=u2.access_key)
    await _associate(channel, root, by_project, project_id=str(project))

    seen = await _allowed(channel, u1)
    assert list(seen) == [shared]
    assert seen[shared].driver == "" and not seen[shared].driver_opts
    seen = await _allowed(channel, a1)
    assert sorted(seen) == sorted([shared, private])
    assert seen[shared].driver == "k8s" and dict(seen[shared].driver_opts) == {"a": "b"}
    assert sorted(await _allowed(channel, u2)) == sorted([by_key, by_project])
    assert list(await _allowed(channel, u2, str(project))) == sorted([by_key, by_project])

    err = await refused(_allowed(channel, u1, str(project)))
    assert err.code() == grpc.StatusCode.NOT_FOUND
    err = await refused(_allowed(channel, u1, str(uuid.uuid4())))
    assert err.code() == grpc.StatusCode.NOT_FOUND
    err = await refused(_allowed(channel, u1, "not-a-uuid"))
    assert violated_fields(err) == ["project_id"]

    await _associate(channel, root, by_project, undo=True, project_id=str(project))
    await _associate(channel, root, by_project, undo=True, project_id=str(project))  # no-op
    await _associate(channel, root, shared, undo=True, domain_name=d2)  # never associated
    assert list(await _allowed(channel, u2)) == [by_key]
    assert list(await _allowed(channel, u1)) == [shared]

    rows = [r for r in await audit_rows(manager, by_key) if r.operation == "associate"]
    assert rows[-1].status == "success" and rows[-1].domain_name == d2


async def test_association_errors(manager: ManagerHandle, channel):  # type: ignore[no-untyped-def]
    root = await superadmin(manager)
    name = unique("sg")
    await _create(channel, root, name)
    missing_targets: list[dict[str, Any]] = [
        {"domain_name": unique("nodomain")},
        {"project_id": str(uuid.uuid4())},
        {"access_key": "AKIA0000000000000000"},
    ]
    for target in missing_targets:
        err = await refused(_associate(channel, root, name, **target))
        assert err.code() == grpc.StatusCode.FAILED_PRECONDITION
        assert reason_of(err) == "REFERENCE_NOT_FOUND"
    err = await refused(_associate(channel, root, unique("nosg"), domain_name="default"))
    assert reason_of(err) == "NOT_FOUND"
    err = await refused(_associate(channel, root, unique("nosg"), undo=True, domain_name="default"))
    assert reason_of(err) == "NOT_FOUND"
    bad_targets: list[dict[str, Any]] = [
        {},
        {"project_id": "nope"},
        {"access_key": "lower"},
        {"domain_name": "-"},
    ]
    for bad in bad_targets:
        err = await refused(_associate(channel, root, name, **bad))
        assert err.code() == grpc.StatusCode.INVALID_ARGUMENT and len(violated_fields(err)) == 1


async def test_delete_refused_while_agents_belong(manager: ManagerHandle, channel):  # type: ignore[no-untyped-def]
    root = await superadmin(manager)
    busy, idle = unique("sg"), unique("sg")
    await _create(channel, root, busy)
    await _create(channel, root, idle)
    await _associate(channel, root, idle, domain_name="default")
    async with manager.ctx.sessions() as db, db.begin():
        db.add(AgentRow(id=unique("agent"), scaling_group=busy, addr="10.0.0.1:6011"))
    err = await refused(_delete(channel, root, busy))
    assert err.code() == grpc.StatusCode.FAILED_PRECONDITION and reason_of(err) == "IN_USE"
    assert (await _get(channel, root, busy)).name == busy
    await _delete(channel, root, idle)
    async with manager.ctx.sessions() as db:
        left = await db.scalar(
            select(ScalingGroupForDomainRow).where(ScalingGroupForDomainRow.scaling_group == idle)
        )
    assert left is None
    rows = [(r.operation, r.status, r.reason) for r in await audit_rows(manager, busy)]
    assert ("delete", "failure", "IN_USE") in rows


@pytest.mark.parametrize("status", ["RUNNING", "PENDING", "TERMINATED"])
async def test_delete_refused_only_while_live(manager: ManagerHandle, channel, status: str):  # type: ignore[no-untyped-def]
    # Live sessions make the group IN_USE; finished ones only keep its name as history.
    root = await superadmin(manager)
    name = unique("sg")
    await _create(channel, root, name)
    async with manager.ctx.sessions() as db, db.begin():
        project_id = await db.scalar(select(ProjectRow.id).where(ProjectRow.name == "default"))
        db.add(
            SessionRow(
                name=unique("sess"),
                domain_name="default",
                project_id=project_id,
                user_id=root.user_id,
                access_key=root.access_key,
                scaling_group=name,
                image="python:3.12",
                status=status,
            )
        )
    if status == "TERMINATED":
        await _delete(channel, root, name)
        return
    err = await refused(_delete(channel, root, name))
    assert err.code() == grpc.StatusCode.FAILED_PRECONDITION and reason_of(err) == "IN_USE"
    assert (await _get(channel, root, name)).name == name


async def test_paging_has_no_duplicates(manager: ManagerHandle, channel):  # type: ignore[no-untyped-def]
    root = await superadmin(manager)
    domain = await make_domain(manager)
    created = sorted(unique("page") for _ in range(5))
    for name in created:
        await _create(channel, root, name)
        await _associate(channel, root, name, domain_name=domain)
    assert await _list(channel, root, domain_name=domain, page_size=2) == created
    everything = await _list(channel, root, page_size=3)
    assert len(everything) == len(set(everything)) and everything == sorted(everything)
    first = await invoke(
        channel, Stub, root, "ListScalingGroups", sg.ListScalingGroupsRequest(page_size=1)
    )
    request = sg.ListScalingGroupsRequest(page_token=first.next_page_token, domain_name=domain)
    err = await refused(invoke(channel, Stub, root, "ListScalingGroups", request))
    assert reason_of(err) == "INVALID_PAGE_TOKEN"
