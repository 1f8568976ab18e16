"""Syntactic checks of SessionService requests, turning them into domain values.

Every bad field is reported at once (one BadRequest with all violations);
checks that need the database (image, slots offered by agents, quotas) are
in bai.manager.sessions.create.
"""

from __future__ import annotations

import hashlib
import re
from datetime import UTC
from decimal import Decimal, InvalidOperation
from typing import Any
from urllib.parse import urlsplit

from bai.api.common.v1 import session_pb2 as common
from bai.api.manager.v1 import session_pb2 as pb
from bai.common.signing import ACCESS_KEY_PATTERN
from bai.manager.api.resource_policy_service import duration_seconds
from bai.manager.sessions import names
from bai.manager.sessions.create import NewSession
from bai.manager.validation import SLOT_NAME_PATTERN, Violations

SESSION_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{3,63}$")
ENV_NAME = re.compile(r"^[A-Za-z_][A-Za-z0-9_]{0,127}$")
RESERVED_ENV_PREFIXES = ("BAI_", "BACKENDAI_")
ARCHITECTURES = ("x86_64", "aarch64")
MAX_CLUSTER_SIZE = 64
MAX_SLOT_VALUE = Decimal(10) ** 30
MAX_ENVIRON = 128
MAX_DEPENDENCIES = 32
MAX_AGENT_LIST = 64
MAX_PREOPEN_PORTS = 16
MAX_MOUNTS = 64
RESERVED_PORTS = range(2000, 2004)


def session_name(v: Violations, field: str, value: str) -> None:
    if not SESSION_NAME.match(value):
        v.add(field, "must be 4-64 characters of [A-Za-z0-9._-], starting with a letter or digit")


def _slots(v: Violations, slots: Any) -> dict[str, Decimal]:
    clean: dict[str, Decimal] = {}
    for key, raw in slots.items():
        field = f"resource_slots.slots[{key[:40]!r}]"
        if not SLOT_NAME_PATTERN.match(key):
            v.add(field, "is not a slot name like 'cpu' or 'cuda.device'")
            continue
        try:
            value = Decimal(raw)
        except InvalidOperation:
            v.add(field, "must be a decimal number")
            continue
        if not value.is_finite() or value < 0 or value > MAX_SLOT_VALUE:
            v.add(field, "must be a finite number between 0 and 1e30")
        elif value == 0 and key in ("cpu", "mem"):
            v.add(field, "must be greater than 0")
        else:
            clean[key] = value
    return clean


def environ_vars(v: Violations, environ: Any, name: str = "environ") -> dict[str, str]:
    if len(environ) > MAX_ENVIRON:
        v.add(name, f"must have at most {MAX_ENVIRON} entries")
    for key, value in environ.items():
        field = f"{name}[{key[:40]!r}]"
        if not ENV_NAME.match(key):
            v.add(field, "must be a variable name ([A-Za-z_][A-Za-z0-9_]*)")
        elif key.upper().startswith(RESERVED_ENV_PREFIXES):
            v.add(field, "names starting with BAI_ or BACKENDAI_ are reserved")
        v.text(field, value, 4096)
    return dict(environ)


def _callback_url(v: Violations, value: str) -> None:
    if not value:
        return
    try:
        url = urlsplit(value)
        ok = url.scheme in ("http", "https") and bool(url.hostname) and len(value) <= 2048
    except ValueError:
        ok = False
    if not ok:
        v.add("callback_url", "must be an http(s) URL of at most 2048 characters")


def _request_digest(request: pb.CreateSessionRequest) -> str:
    plain = pb.CreateSessionRequest()
    plain.CopyFrom(request)
    # Waiting options do not change what is created.
    plain.ClearField("enqueue_only")
    plain.ClearField("max_wait")
    return hashlib.sha256(plain.SerializeToString(deterministic=True)).hexdigest()


def parse_create(request: pb.CreateSessionRequest) -> NewSession:
    v = Violations()
    if request.name:
        session_name(v, "name", request.name)
    v.text("image", request.image, 512, required=True)
    if request.architecture and request.architecture not in ARCHITECTURES:
        v.add("architecture", f"must be one of {', '.join(ARCHITECTURES)}")
    session_type = names.session_type_name(request.type)
    if request.type not in common.SessionType.values():
        v.add("type", "must be a known session type")
    if request.cluster_mode not in common.ClusterMode.values():
        v.add("cluster_mode", "must be a known cluster mode")
    cluster_size = request.cluster_size or 1
    v.int_range("cluster_size", cluster_size, 1, MAX_CLUSTER_SIZE)
    slots = _slots(v, request.resource_slots.slots)
    opts: dict[str, Any] = {}
    if request.resource_opts.shmem_bytes < 0:
        v.add("resource_opts.shmem_bytes", "must not be negative")
    elif request.resource_opts.shmem_bytes:
        opts["shmem_bytes"] = request.resource_opts.shmem_bytes
    if request.resource_opts.HasField("allow_fractional_resource_fragmentation"):
        fragmentation = request.resource_opts.allow_fractional_resource_fragmentation
        opts["allow_fractional_resource_fragmentation"] = fragmentation
    environ = environ_vars(v, request.environ)
    if len(request.mounts) > MAX_MOUNTS:
        v.add("mounts", f"must have at most {MAX_MOUNTS} entries")
    v.text("startup_command", request.startup_command, 65536)
    if session_type == "batch" and not request.startup_command.strip():
        v.add("startup_command", "is required for BATCH sessions")
    v.text("bootstrap_script", request.bootstrap_script, 65536)
    batch_timeout = duration_seconds(v, "batch_timeout", request.batch_timeout)
    if batch_timeout and session_type != "batch":
        v.add("batch_timeout", "applies to BATCH sessions only")
    if request.scaling_group:
        v.name("scaling_group", request.scaling_group)
    project_id = v.uuid("project_id", request.project_id) if request.project_id else None
    priority = request.priority if request.HasField("priority") else None
    if priority is not None:
        v.int_range("priority", priority, 0, 100)
    starts_at = request.starts_at.ToDatetime(tzinfo=UTC) if request.HasField("starts_at") else None
    if starts_at is not None and session_type != "batch":
        v.add("starts_at", "applies to BATCH sessions only")
    if len(request.dependencies) > MAX_DEPENDENCIES:
        v.add("dependencies", f"must name at most {MAX_DEPENDENCIES} sessions")
    for i, dep in enumerate(request.dependencies):
        v.text(f"dependencies[{i}]", dep, 64, required=True)
    _callback_url(v, request.callback_url)
    if len(request.preopen_ports) > MAX_PREOPEN_PORTS:
        v.add("preopen_ports", f"must have at most {MAX_PREOPEN_PORTS} ports")
    for i, port in enumerate(request.preopen_ports):
        if not 1025 <= port <= 65535 or port in RESERVED_PORTS:
            v.add(f"preopen_ports[{i}]", "must be 1025-65535 and not 2000-2003")
    if len(request.agent_list) > MAX_AGENT_LIST:
        v.add("agent_list", f"must name at most {MAX_AGENT_LIST} agents")
    for i, agent in enumerate(request.agent_list):
        v.text(f"agent_list[{i}]", agent, 64, required=True)
    if request.owner_access_key and not ACCESS_KEY_PATTERN.match(request.owner_access_key):
        v.add("owner_access_key", "must be an access key")
    v.request_id(request.request_id)
    if request.HasField("max_wait"):
        duration_seconds(v, "max_wait", request.max_wait)
    v.text("tag", request.tag, 64)
    v.raise_if_any()
    return NewSession(
        name=request.name,
        image=request.image,
        architecture=request.architecture,
        session_type=session_type,
        cluster_mode=names.cluster_mode_name(request.cluster_mode),
        cluster_size=cluster_size,
        slots=slots,
        resource_opts=opts,
        environ=environ,
        startup_command=request.startup_command,
        bootstrap_script=request.bootstrap_script,
        batch_timeout=batch_timeout,
        scaling_group=request.scaling_group,
        project_id=project_id,
        priority=priority,
        starts_at=starts_at,
        dependencies=tuple(request.dependencies),
        callback_url=request.callback_url,
        preopen_ports=tuple(request.preopen_ports),
        agent_list=tuple(request.agent_list),
        owner_access_key=request.owner_access_key,
        request_id=request.request_id,
        is_preemptible=request.is_preemptible if request.HasField("is_preemptible") else None,
        tag=request.tag,
        digest=_request_digest(request),
        mounts=tuple(request.mounts),
    )
