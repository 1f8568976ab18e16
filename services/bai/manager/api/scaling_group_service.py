"""ScalingGroupService: thin edge over bai.manager.admin.scaling_groups."""

from __future__ import annotations

import re
from collections.abc import Awaitable, Callable
from typing import Any
from urllib.parse import urlsplit

from google.protobuf.duration_pb2 import Duration

from bai.api.manager.v1 import scaling_group_pb2 as sg
from bai.api.manager.v1 import scaling_group_pb2_grpc as sg_grpc
from bai.common.signing import ACCESS_KEY_PATTERN
from bai.manager.admin import scaling_groups
from bai.manager.api.convert import timestamp
from bai.manager.api.resource_policy_service import duration_seconds
from bai.manager.api.rpc import Call, unary
from bai.manager.auth.access import gets_user_view_of_scaling_groups
from bai.manager.context import ManagerContext
from bai.manager.db.policies import ScalingGroupRow
from bai.manager.validation import Violations

SCHEDULERS = {
    sg.SCHEDULER_TYPE_FIFO: "fifo",
    sg.SCHEDULER_TYPE_LIFO: "lifo",
    sg.SCHEDULER_TYPE_DRF: "drf",
    sg.SCHEDULER_TYPE_FAIR_SHARE: "fair-share",
}
SCHEDULERS_TO_PROTO = {v: k for k, v in SCHEDULERS.items()}
STRATEGIES = {
    sg.AGENT_SELECTION_STRATEGY_CONCENTRATED: "concentrated",
    sg.AGENT_SELECTION_STRATEGY_DISPERSED: "dispersed",
    sg.AGENT_SELECTION_STRATEGY_ROUND_ROBIN: "roundrobin",
    sg.AGENT_SELECTION_STRATEGY_LEGACY: "legacy",
}
STRATEGIES_TO_PROTO = {v: k for k, v in STRATEGIES.items()}
SESSION_TYPES = ("interactive", "batch", "inference")
DEFAULT_SESSION_TYPES = ["interactive", "batch"]
DRIVER_PATTERN = re.compile(r"^[a-z0-9_-]{1,64}$")
MAX_DRIVER_OPTS = 64


def group_to_proto(row: ScalingGroupRow, *, user_view: bool = False) -> sg.ScalingGroup:
    opts = row.scheduler_opts
    return sg.ScalingGroup(
        name=row.name,
        description=row.description,
        is_active=row.is_active,
        is_public=row.is_public,
        is_default=row.is_default,
        wsproxy_addr=row.wsproxy_addr,
        driver="" if user_view else row.driver,
        driver_opts={} if user_view else row.driver_opts,
        scheduler=SCHEDULERS_TO_PROTO.get(row.scheduler, sg.SCHEDULER_TYPE_UNSPECIFIED),
        scheduler_opts=sg.SchedulerOptions(
            allowed_session_types=opts.get("allowed_session_types", DEFAULT_SESSION_TYPES),
            pending_timeout=Duration(seconds=opts.get("pending_timeout", 0)),
            agent_selection_strategy=STRATEGIES_TO_PROTO.get(
                opts.get("agent_selection_strategy", "dispersed"),
                sg.AGENT_SELECTION_STRATEGY_UNSPECIFIED,
            ),
            allow_fractional_resource_fragmentation=opts.get(
                "allow_fractional_resource_fragmentation", True
            ),
        ),
        use_host_network=row.use_host_network,
        created_at=timestamp(row.created_at),
    )


def _wsproxy_addr(v: Violations, field: str, value: str) -> None:
    if not value:
        return
    try:
        url = urlsplit(value)
        ok = url.scheme in ("http", "https") and bool(url.hostname) and url.port is not None
        ok = ok and not (url.username or url.password or url.query or url.fragment)
        ok = ok and url.path in ("", "/") and len(value) <= 1024 and value.isprintable()
    except ValueError:
        ok = False
    if not ok:
        v.add(field, "must be 'http://host:port' or 'https://host:port', at most 1024 characters")


def _driver_opts(v: Violations, field: str, opts: Any) -> dict[str, str]:
    if len(opts) > MAX_DRIVER_OPTS:
        v.add(field, f"must have at most {MAX_DRIVER_OPTS} entries")
    for key, value in opts.items():
        if not 1 <= len(key) <= 64 or not key.isprintable():
            v.add(f"{field}[{key[:40]!r}]", "key must be 1-64 printable characters")
        v.text(f"{field}[{key[:40]!r}]", value, 1024)
    return dict(opts)


def _scheduler_opts(v: Violations, opts: sg.SchedulerOptions, creating: bool) -> dict[str, Any]:
    field = "scaling_group.scheduler_opts"
    types = list(opts.allowed_session_types)
    if creating and not types:
        types = list(DEFAULT_SESSION_TYPES)
    if not types:
        v.add(f"{field}.allowed_session_types", "must name at least one session type")
    if len(set(types)) != len(types) or not set(types) <= set(SESSION_TYPES):
        v.add(f"{field}.allowed_session_types", f"must be distinct values of {SESSION_TYPES}")
    strategy = opts.agent_selection_strategy
    if creating and strategy == sg.AGENT_SELECTION_STRATEGY_UNSPECIFIED:
        strategy = sg.AGENT_SELECTION_STRATEGY_DISPERSED
    if strategy not in STRATEGIES:
        v.add(f"{field}.agent_selection_strategy", "must be a known strategy")
    fragmentation = opts.allow_fractional_resource_fragmentation
    if not opts.HasField("allow_fractional_resource_fragmentation"):
        if not creating:
            v.add(f"{field}.allow_fractional_resource_fragmentation", "must be set")
        fragmentation = True
    return {
        "allowed_session_types": types,
        "pending_timeout": duration_seconds(v, f"{field}.pending_timeout", opts.pending_timeout),
        "agent_selection_strategy": STRATEGIES.get(strategy, ""),
        "allow_fractional_resource_fragmentation": fragmentation,
    }


def group_values(
    v: Violations, g: sg.ScalingGroup, fields: list[str], *, creating: bool
) -> dict[str, Any]:
    values: dict[str, Any] = {}
    for name in fields:
        field = f"scaling_group.{name}"
        value: Any = getattr(g, name)
        if name == "description":
            v.text(field, value, 1024)
        elif name == "wsproxy_addr":
            _wsproxy_addr(v, field, value)
        elif name == "driver":
            value = value or ("static" if creating else "")
            if not DRIVER_PATTERN.match(value):
                v.add(field, "must be 1-64 characters of [a-z0-9_-]")
        elif name == "driver_opts":
            value = _driver_opts(v, field, value)
        elif name == "scheduler":
            if creating and value == sg.SCHEDULER_TYPE_UNSPECIFIED:
                value = sg.SCHEDULER_TYPE_FIFO
            if value not in SCHEDULERS:
                v.add(field, "must be a known scheduler")
            value = SCHEDULERS.get(value, "")
        elif name == "scheduler_opts":
            value = _scheduler_opts(v, g.scheduler_opts, creating)
        values[name] = value
    return values


def _target(v: Violations, request: Any) -> tuple[str, Any]:
    kind = request.WhichOneof("target")
    if kind is None:
        v.add("target", "set exactly one of domain_name, project_id, access_key")
        return "", None
    value = getattr(request, kind)
    if kind == "domain_name":
        v.name(kind, value)
    elif kind == "project_id":
        value = v.uuid(kind, value)
    elif not ACCESS_KEY_PATTERN.match(value):
        v.add(kind, "must be an access key")
    return kind, value


class ScalingGroupServicer(sg_grpc.ScalingGroupServiceServicer):
    SERVICE = "bai.api.manager.v1.ScalingGroupService"

    def __init__(self, ctx: ManagerContext) -> None:
        self.ctx = ctx

    @unary(audit=("scaling_group", "create"))
    async def CreateScalingGroup(
        self, request: sg.CreateScalingGroupRequest, call: Call
    ) -> sg.CreateScalingGroupResponse:
        v = Violations()
        v.name("scaling_group.name", request.scaling_group.name)
        v.request_id(request.request_id)
        fields = [f for f in scaling_groups.UPDATABLE if f != "is_active"]
        values = group_values(v, request.scaling_group, fields, creating=True)
        v.raise_if_any()
        call.entity_id = values["name"] = request.scaling_group.name
        values["is_active"] = True
        async with self.ctx.sessions() as db, db.begin():
            row = await scaling_groups.create_scaling_group(db, call.principal, values)
        return sg.CreateScalingGroupResponse(scaling_group=group_to_proto(row))

    @unary()
    async def GetScalingGroup(
        self, request: sg.GetScalingGroupRequest, call: Call
    ) -> sg.GetScalingGroupResponse:
        v = Violations()
        v.name("name", request.name)
        v.raise_if_any()
        async with self.ctx.sessions() as db:
            row = await scaling_groups.get_scaling_group(db, call.principal, request.name)
        return sg.GetScalingGroupResponse(scaling_group=group_to_proto(row))

    @unary()
    async def ListScalingGroups(
        self, request: sg.ListScalingGroupsRequest, call: Call
    ) -> sg.ListScalingGroupsResponse:
        v = Violations()
        size = v.page_size(request.page_size)
        if request.domain_name:
            v.name("domain_name", request.domain_name)
        v.raise_if_any()
        async with self.ctx.sessions() as db:
            rows, token = await scaling_groups.list_scaling_groups(
                db, call.principal, size, request.page_token, request.domain_name
            )
        return sg.ListScalingGroupsResponse(
            scaling_groups=[group_to_proto(r) for r in rows], next_page_token=token
        )

    @unary(audit=("scaling_group", "update"))
    async def UpdateScalingGroup(
        self, request: sg.UpdateScalingGroupRequest, call: Call
    ) -> sg.UpdateScalingGroupResponse:
        v = Violations()
        v.name("scaling_group.name", request.scaling_group.name)
        fields = v.mask(request.update_mask.paths, scaling_groups.UPDATABLE)
        changes = group_values(v, request.scaling_group, fields, creating=False)
        v.raise_if_any()
        call.entity_id = request.scaling_group.name
        async with self.ctx.sessions() as db, db.begin():
            row = await scaling_groups.update_scaling_group(
                db, call.principal, request.scaling_group.name, changes
            )
        return sg.UpdateScalingGroupResponse(scaling_group=group_to_proto(row))

    @unary(audit=("scaling_group", "delete"))
    async def DeleteScalingGroup(
        self, request: sg.DeleteScalingGroupRequest, call: Call
    ) -> sg.DeleteScalingGroupResponse:
        v = Violations()
        v.name("name", request.name)
        v.raise_if_any()
        call.entity_id = request.name
        async with self.ctx.sessions() as db, db.begin():
            await scaling_groups.delete_scaling_group(db, call.principal, request.name)
        return sg.DeleteScalingGroupResponse()

    async def _change_association(
        self, request: Any, call: Call, change: Callable[..., Awaitable[str | None]]
    ) -> None:
        v = Violations()
        v.name("scaling_group_name", request.scaling_group_name)
        kind, value = _target(v, request)
        v.raise_if_any()
        call.entity_id = request.scaling_group_name
        async with self.ctx.sessions() as db, db.begin():
            domain = await change(db, call.principal, request.scaling_group_name, kind, value)
        # The target's domain, only now: a refused call stays in the caller's domain.
        call.domain_name = domain or ""

    @unary(audit=("scaling_group", "associate"))
    async def AssociateScalingGroup(
        self, request: sg.AssociateScalingGroupRequest, call: Call
    ) -> sg.AssociateScalingGroupResponse:
        await self._change_association(request, call, scaling_groups.associate)
        return sg.AssociateScalingGroupResponse()

    @unary(audit=("scaling_group", "disassociate"))
    async def DisassociateScalingGroup(
        self, request: sg.DisassociateScalingGroupRequest, call: Call
    ) -> sg.DisassociateScalingGroupResponse:
        await self._change_association(request, call, scaling_groups.disassociate)
        return sg.DisassociateScalingGroupResponse()

    @unary()
    async def ListAllowedScalingGroups(
        self, request: sg.ListAllowedScalingGroupsRequest, call: Call
    ) -> sg.ListAllowedScalingGroupsResponse:
        v = Violations()
        project_id = v.uuid("project_id", request.project_id) if request.project_id else None
        v.raise_if_any()
        async with self.ctx.sessions() as db:
            rows = await scaling_groups.list_allowed(db, call.principal, project_id)
        user_view = gets_user_view_of_scaling_groups(call.principal)
        return sg.ListAllowedScalingGroupsResponse(
            scaling_groups=[group_to_proto(r, user_view=user_view) for r in rows]
        )
