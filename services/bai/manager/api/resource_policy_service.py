"""ResourcePolicyService: thin edge over bai.manager.admin.resource_policies.

The fifteen RPCs are five generic operations over three kinds of policy:
`_rpc` makes each RPC's handler from its verb and kind, and one table of field
rules validates and converts the fields of all three messages.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from google.protobuf.duration_pb2 import Duration
from google.protobuf.message import Message

from bai.api.common.v1 import types_pb2
from bai.api.manager.v1 import domain_pb2
from bai.api.manager.v1 import resource_policy_pb2 as rp
from bai.api.manager.v1 import resource_policy_pb2_grpc as rp_grpc
from bai.manager.admin import resource_policies as policies
from bai.manager.admin.resource_policies import KEYPAIR, PROJECT, USER, PolicyKind, PolicyRow
from bai.manager.api.convert import timestamp
from bai.manager.api.project_service import vfolder_hosts
from bai.manager.api.rpc import Call, unary
from bai.manager.context import ManagerContext
from bai.manager.validation import Violations

MAX_DURATION_SECONDS = 365 * 24 * 3600
MILLION = 1_000_000
INT_LIMITS = {
    "max_concurrent_sessions": MILLION,
    "max_concurrent_sftp_sessions": MILLION,
    "max_pending_session_count": MILLION,
    "max_priority": 100,
    "max_containers_per_session": 1000,
    "max_vfolder_count": MILLION,
    "max_quota_scope_size": 2**63 - 1,
    "max_session_count_per_model_session": MILLION,
    "max_customized_image_count": MILLION,
    "max_concurrent_logins": MILLION,
    "max_network_count": MILLION,
}
DURATIONS = ("max_session_lifetime", "idle_timeout")
SLOTS = ("total_resource_slots", "max_pending_session_resource_slots")
DEFAULT_MAX_PRIORITY = 10
DEFAULT_FOR_UNSPECIFIED = {
    rp.DEFAULT_FOR_UNSPECIFIED_LIMITED: "limited",
    rp.DEFAULT_FOR_UNSPECIFIED_UNLIMITED: "unlimited",
}
DEFAULT_FOR_UNSPECIFIED_TO_PROTO = {v: k for k, v in DEFAULT_FOR_UNSPECIFIED.items()}

MESSAGES: dict[PolicyKind, type[Message]] = {
    KEYPAIR: rp.KeypairResourcePolicy,
    USER: rp.UserResourcePolicy,
    PROJECT: rp.ProjectResourcePolicy,
}


def duration_seconds(v: Violations, field: str, d: Duration) -> int:
    """Whole seconds, 0 to 365 days."""
    if d.nanos or not 0 <= d.seconds <= MAX_DURATION_SECONDS:
        v.add(field, f"must be whole seconds between 0 and {MAX_DURATION_SECONDS}")
    return int(d.seconds)


def policy_values(v: Violations, msg: Any, fields: list[str], *, creating: bool) -> dict[str, Any]:
    """Validate the named fields of a policy message; returns DB column values."""
    values: dict[str, Any] = {}
    for name in fields:
        field = f"policy.{name}"
        if name == "max_priority" and not msg.HasField("max_priority"):
            if creating:
                values[name] = DEFAULT_MAX_PRIORITY
            else:
                v.add(field, "must be set when named in update_mask")
        elif name in INT_LIMITS:
            v.int_range(field, getattr(msg, name), 0, INT_LIMITS[name])
            values[name] = getattr(msg, name)
        elif name in DURATIONS:
            values[name] = duration_seconds(v, field, getattr(msg, name))
        elif name in SLOTS:
            values[name] = v.slots(field, getattr(msg, name).slots)
        elif name == "default_for_unspecified":
            value = msg.default_for_unspecified
            if creating and value == rp.DEFAULT_FOR_UNSPECIFIED_UNSPECIFIED:
                value = rp.DEFAULT_FOR_UNSPECIFIED_UNLIMITED
            if value not in DEFAULT_FOR_UNSPECIFIED:
                v.add(field, "must be LIMITED or UNLIMITED")
            values[name] = DEFAULT_FOR_UNSPECIFIED.get(value, "")
        elif name == "allowed_vfolder_hosts":
            values[name] = vfolder_hosts(v, field, msg.allowed_vfolder_hosts)
    return values


def policy_to_proto(kind: PolicyKind, row: PolicyRow) -> Any:
    fields: dict[str, Any] = {}
    for name in kind.updatable:
        value = getattr(row, name)
        if name in DURATIONS:
            value = Duration(seconds=value)
        elif name in SLOTS:
            value = types_pb2.ResourceSlots(slots=value)
        elif name == "default_for_unspecified":
            value = DEFAULT_FOR_UNSPECIFIED_TO_PROTO.get(value, 0)
        elif name == "allowed_vfolder_hosts":
            value = {h: domain_pb2.HostPermissions(permissions=ps) for h, ps in value.items()}
        fields[name] = value
    return MESSAGES[kind](name=row.name, created_at=timestamp(row.created_at), **fields)


def _rpc(verb: str, kind: PolicyKind) -> Callable[..., Any]:
    """The handler of `<verb><Kind>ResourcePolic{y,ies}`: one generic operation."""
    word = kind.entity.split("_")[0].title()
    name = f"{verb}{word}ResourcePolic{'ies' if verb == 'List' else 'y'}"
    response = getattr(rp, f"{name}Response")

    async def handler(self: ResourcePolicyServicer, request: Any, call: Call) -> Message:
        operation = getattr(self, f"_{verb.lower()}")
        return response(**await operation(kind, request, call))  # type: ignore[no-any-return]

    handler.__name__ = handler.__qualname__ = name
    # rpc.unary replays stored responses by this type.
    handler.__annotations__ = {"return": response}
    writes = ("Create", "Update", "Delete")
    return unary(audit=(kind.entity, verb.lower()) if verb in writes else None)(handler)


class ResourcePolicyServicer(rp_grpc.ResourcePolicyServiceServicer):
    SERVICE = "bai.api.manager.v1.ResourcePolicyService"

    def __init__(self, ctx: ManagerContext) -> None:
        self.ctx = ctx

    # The five operations, for any kind; each returns the response's fields.

    async def _create(self, kind: PolicyKind, request: Any, call: Call) -> dict[str, Any]:
        v = Violations()
        v.name("policy.name", request.policy.name)
        v.request_id(request.request_id)
        values = policy_values(v, request.policy, list(kind.updatable), creating=True)
        v.raise_if_any()
        call.entity_id = values["name"] = request.policy.name
        async with self.ctx.sessions() as db, db.begin():
            row = await policies.create_policy(db, call.principal, kind, values)
        return {"policy": policy_to_proto(kind, row)}

    async def _get(self, kind: PolicyKind, request: Any, call: Call) -> dict[str, Any]:
        v = Violations()
        v.name("name", request.name)
        v.raise_if_any()
        async with self.ctx.sessions() as db:
            row = await policies.get_policy(db, call.principal, kind, request.name)
        return {"policy": policy_to_proto(kind, row)}

    async def _list(self, kind: PolicyKind, request: Any, call: Call) -> dict[str, Any]:
        v = Violations()
        size = v.page_size(request.page_size)
        v.raise_if_any()
        async with self.ctx.sessions() as db:
            rows, token = await policies.list_policies(
                db, call.principal, kind, size, request.page_token
            )
        return {"policies": [policy_to_proto(kind, r) for r in rows], "next_page_token": token}

    async def _update(self, kind: PolicyKind, request: Any, call: Call) -> dict[str, Any]:
        v = Violations()
        v.name("policy.name", request.policy.name)
        fields = v.mask(request.update_mask.paths, kind.updatable)
        changes = policy_values(v, request.policy, fields, creating=False)
        v.raise_if_any()
        call.entity_id = request.policy.name
        async with self.ctx.sessions() as db, db.begin():
            row = await policies.update_policy(
                db, call.principal, kind, request.policy.name, changes
            )
        return {"policy": policy_to_proto(kind, row)}

    async def _delete(self, kind: PolicyKind, request: Any, call: Call) -> dict[str, Any]:
        v = Violations()
        v.name("name", request.name)
        v.raise_if_any()
        call.entity_id = request.name
        async with self.ctx.sessions() as db, db.begin():
            await policies.delete_policy(db, call.principal, kind, request.name)
        return {}

    CreateKeypairResourcePolicy = _rpc("Create", KEYPAIR)
    GetKeypairResourcePolicy = _rpc("Get", KEYPAIR)
    ListKeypairResourcePolicies = _rpc("List", KEYPAIR)
    UpdateKeypairResourcePolicy = _rpc("Update", KEYPAIR)
    DeleteKeypairResourcePolicy = _rpc("Delete", KEYPAIR)

    CreateUserResourcePolicy = _rpc("Create", USER)
    GetUserResourcePolicy = _rpc("Get", USER)
    ListUserResourcePolicies = _rpc("List", USER)
    UpdateUserResourcePolicy = _rpc("Update", USER)
    DeleteUserResourcePolicy = _rpc("Delete", USER)

    CreateProjectResourcePolicy = _rpc("Create", PROJECT)
    GetProjectResourcePolicy = _rpc("Get", PROJECT)
    ListProjectResourcePolicies = _rpc("List", PROJECT)
    UpdateProjectResourcePolicy = _rpc("Update", PROJECT)
    DeleteProjectResourcePolicy = _rpc("Delete", PROJECT)
