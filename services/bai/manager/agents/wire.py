"""Agent registry messages -> the plain values the agents package works on.

The registry and ingestion logic never see protobuf messages; this module is
the one place that knows both shapes (and how JSONB columns store the
agent's hardware, plugins, ports and devices).
"""

from __future__ import annotations

import logging
from typing import Any

from google.protobuf.json_format import MessageToDict

from bai.api.agent.v1 import agent_pb2
from bai.api.common.v1 import image_pb2, node_pb2, session_pb2
from bai.api.manager.v1 import agent_registry_pb2 as reg
from bai.manager.agents.images import DEFAULT_ARCHITECTURE, ReportedImage
from bai.manager.agents.ingest import AgentEvent, BatchFinished, ImageChanged, KernelChanged, Noted
from bai.manager.agents.kernel_updates import KernelReport, RuntimeInfo
from bai.manager.agents.registry import Registration
from bai.manager.sessions import lifecycle, names
from bai.manager.validation import Violations

log = logging.getLogger(__name__)


def _json(message: Any) -> dict[str, Any]:
    return MessageToDict(message, preserving_proto_field_name=True)


def service_port_json(port: session_pb2.ServicePort) -> dict[str, Any]:
    protocol = session_pb2.AppProtocol.Name(port.protocol).removeprefix("APP_PROTOCOL_").lower()
    return {
        "name": port.name,
        "protocol": protocol,
        "container_ports": list(port.container_ports),
        "host_ports": list(port.host_ports),
        "is_inference": port.is_inference,
    }


def slots(field: str, reported: Any) -> dict[str, str]:
    """Canonical slot amounts; INVALID_FIELD for names or amounts the scheduler
    could not read later."""
    v = Violations()
    clean = v.slots(field, reported)
    v.raise_if_any()
    return clean


def _allocated(runtime: agent_pb2.KernelRuntimeInfo) -> dict[str, str]:
    """Unreadable allocations are ignored (the scheduler's amounts stay)."""
    v = Violations()
    clean = v.slots("runtime.allocated_slots", runtime.allocated_slots.slots)
    if v.items:
        log.warning("ignoring unreadable allocated slots of %s", runtime.container_id[:64])
        return {}
    return clean


def runtime_info(runtime: agent_pb2.KernelRuntimeInfo) -> RuntimeInfo:
    return RuntimeInfo(
        container_id=runtime.container_id,
        kernel_host=runtime.kernel_host,
        service_ports=[service_port_json(p) for p in runtime.service_ports],
        host_ports=list(runtime.host_ports),
        attached_devices=[_json(d) for d in runtime.attached_devices],
        allocated_slots=_allocated(runtime),
    )


def reported_kernel(kernel: agent_pb2.Kernel) -> KernelReport:
    known = kernel.status in names.KERNEL_STATUS.values()
    status = names.kernel_status_name(kernel.status) if known else ""
    return KernelReport(
        kernel_id=kernel.kernel_id,
        status=status,
        reason=names.reason_name(kernel.status_reason),
        message=kernel.status_message,
        exit_code=kernel.exit_code if kernel.HasField("exit_code") else None,
        runtime=runtime_info(kernel.runtime) if kernel.HasField("runtime") else None,
    )


def reported_image(
    ref: image_pb2.ImageRef, size_bytes: int = 0, labels: dict[str, str] | None = None
) -> ReportedImage:
    return ReportedImage(
        canonical=ref.canonical,
        architecture=ref.architecture or DEFAULT_ARCHITECTURE,
        digest=ref.digest,
        size_bytes=size_bytes,
        labels=dict(labels or {}),
        is_local=ref.is_local,
    )


def installed_image(image: agent_pb2.InstalledImage) -> ReportedImage:
    return reported_image(image.image, image.size_bytes, dict(image.labels))


def slot_types_json(types: Any) -> dict[str, Any]:
    """slot name -> {"type": "count"|"bytes"|..., "display_unit": ...}."""
    return {
        t.slot_name: {
            "type": node_pb2.SlotType.Name(t.type).removeprefix("SLOT_TYPE_").lower(),
            "display_unit": t.display_unit,
        }
        for t in types
    }


def compute_plugins_json(plugins: Any) -> dict[str, Any]:
    return {p.key: _json(p) for p in plugins}


def registration(message: reg.AgentRegistration) -> Registration:
    hardware = _json(message.hardware) if message.HasField("hardware") else {}
    return Registration(
        agent_id=message.agent_id,
        boot_id=message.boot_id,
        addr=message.addr,
        public_host=message.public_host,
        region=message.region,
        scaling_group=message.scaling_group,
        architecture=message.architecture or DEFAULT_ARCHITECTURE,
        version=message.version,
        available_slots=slots("register.available_slots", message.available_slots.slots),
        slot_types=slot_types_json(message.slot_types),
        hardware=hardware,
        compute_plugins=compute_plugins_json(message.hardware.compute_plugins),
        kernels=[reported_kernel(k) for k in message.kernels],
        images=[installed_image(i) for i in message.images],
        auto_terminate_abusing_kernel=message.auto_terminate_abusing_kernel,
    )


def _kernel_event(event: reg.KernelEvent) -> AgentEvent:
    kind = reg.KernelEventType.Name(event.type).removeprefix("KERNEL_EVENT_TYPE_")
    reason = names.reason_name(event.reason)
    status = lifecycle.kernel_event_status(kind, reason)
    if status is None:
        return Noted("kernel event", f"{kind} for {event.kernel_id[:64]}", logging.WARNING)
    with_runtime = kind in ("STARTED", "RESTARTED") and event.HasField("runtime")
    return KernelChanged(
        KernelReport(
            kernel_id=event.kernel_id,
            status=status,
            reason=reason,
            message=event.message,
            exit_code=event.exit_code if event.HasField("exit_code") else None,
            runtime=runtime_info(event.runtime) if with_runtime else None,
        )
    )


def _image_event(event: reg.ImageEvent) -> AgentEvent:
    kind = reg.ImageEventType.Name(event.type).removeprefix("IMAGE_EVENT_TYPE_")
    image = reported_image(event.image, event.total_bytes)
    if kind == "PULL_FINISHED":
        return ImageChanged("pulled", image)
    if kind == "REMOVED":
        return ImageChanged("removed", image)
    level = logging.INFO if kind == "PULL_FAILED" else logging.DEBUG
    return Noted(f"image {kind.lower()}", f"{image.canonical}: {event.message}", level)


def agent_event(request: reg.ConnectRequest) -> AgentEvent | None:
    """The event a ConnectRequest carries; None when it carries none."""
    which = request.WhichOneof("payload")
    if which == "kernel_event":
        return _kernel_event(request.kernel_event)
    if which == "image_event":
        return _image_event(request.image_event)
    if which == "batch_result":
        b = request.batch_result
        return BatchFinished(
            session_id=b.session_id,
            kernel_id=b.kernel_id,
            result=names.result_name(b.result),
            exit_code=b.exit_code,
            reason=names.reason_name(b.reason),
        )
    if which == "execution_event":
        e = request.execution_event
        kind = reg.ExecutionEventType.Name(e.type).removeprefix("EXECUTION_EVENT_TYPE_")
        return Noted("execution", f"{kind} run {e.run_id[:64]} in {e.kernel_id[:64]}")
    if which == "agent_error":
        error = request.agent_error
        return Noted("agent error", f"{error.message}\n{error.detail}", logging.WARNING)
    return None
