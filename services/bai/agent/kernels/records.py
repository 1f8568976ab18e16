"""The agent's on-disk kernel registry: one JSON file per kernel.

state_dir/kernels/<kernel_id>.json holds what a restarted agent needs to
re-adopt a kernel without allocating anything twice: the creation config,
status, sandbox id, device allocations, host ports and service ports. Files
are written to a temporary name and renamed, so a crash never leaves half a
record.
"""

from __future__ import annotations

import json
import logging
import os
from dataclasses import dataclass, field
from datetime import UTC, datetime
from decimal import Decimal
from pathlib import Path
from typing import Any

from google.protobuf import json_format

from bai.agent.resources.allocator import from_json as allocation_from_json
from bai.agent.resources.allocator import to_json as allocation_to_json
from bai.agent.resources.plugin import Allocation
from bai.api.agent.v1 import agent_pb2
from bai.api.common.v1 import session_pb2
from bai.common.slots import canonical

log = logging.getLogger(__name__)

KS = session_pb2.KernelStatus
TERMINAL = frozenset(
    {KS.KERNEL_STATUS_TERMINATED, KS.KERNEL_STATUS_CANCELLED, KS.KERNEL_STATUS_ERROR}
)


def _time(value: datetime | None) -> str | None:
    return value.isoformat() if value else None


def _parse_time(value: str | None) -> datetime | None:
    return datetime.fromisoformat(value) if value else None


@dataclass
class KernelRecord:
    config: agent_pb2.KernelCreationConfig
    cluster: agent_pb2.ClusterInfo
    status: int = KS.KERNEL_STATUS_PREPARING
    status_reason: int = 0
    status_message: str = ""
    sandbox_id: str = ""
    # The runtime's name for the image (after resolution).
    image_ref: str = ""
    allocations: list[Allocation] = field(default_factory=list)
    host_ports: list[int] = field(default_factory=list)
    service_ports: list[session_pb2.ServicePort] = field(default_factory=list)
    created_at: datetime = field(default_factory=lambda: datetime.now(UTC))
    started_at: datetime | None = None
    terminated_at: datetime | None = None
    exit_code: int | None = None
    # RestartKernel request ids already served (idempotent retries).
    restart_request_ids: list[str] = field(default_factory=list)

    @property
    def kernel_id(self) -> str:
        return self.config.kernel_id

    @property
    def session_id(self) -> str:
        return self.config.session_id

    @property
    def is_terminal(self) -> bool:
        return self.status in TERMINAL

    def runtime_info(self, kernel_host: str) -> agent_pb2.KernelRuntimeInfo:
        slots: dict[str, Decimal] = {}
        devices: list[agent_pb2.AttachedDevice] = []
        for allocation in self.allocations:
            for slot, amount in allocation.slots.items():
                slots[slot] = slots.get(slot, Decimal(0)) + amount
            if allocation.plugin in ("cpu", "mem"):
                continue
            devices.extend(
                agent_pb2.AttachedDevice(
                    plugin=allocation.plugin,
                    device_id=share.device_id,
                    slot_name=share.slot,
                    amount=canonical(share.amount),
                )
                for share in allocation.shares
            )
        info = agent_pb2.KernelRuntimeInfo(
            container_id=self.sandbox_id,
            kernel_host=kernel_host,
            service_ports=self.service_ports,
            attached_devices=devices,
            host_ports=self.host_ports,
        )
        for slot, amount in sorted(slots.items()):
            info.allocated_slots.slots[slot] = canonical(amount)
        return info

    def to_proto(self, kernel_host: str) -> agent_pb2.Kernel:
        kernel = agent_pb2.Kernel(
            kernel_id=self.kernel_id,
            session_id=self.session_id,
            status=self.status,  # type: ignore[arg-type]
            status_reason=self.status_reason,  # type: ignore[arg-type]
            status_message=self.status_message,
            image=self.config.image,
            cluster_role=self.config.cluster_role,
        )
        if self.sandbox_id and self.status in (
            KS.KERNEL_STATUS_RUNNING,
            KS.KERNEL_STATUS_RESTARTING,
        ):
            kernel.runtime.CopyFrom(self.runtime_info(kernel_host))
        if self.exit_code is not None:
            kernel.exit_code = self.exit_code
        kernel.created_at.FromDatetime(self.created_at)
        if self.started_at:
            kernel.started_at.FromDatetime(self.started_at)
        if self.terminated_at:
            kernel.terminated_at.FromDatetime(self.terminated_at)
        return kernel

    def to_json(self) -> dict[str, Any]:
        return {
            "config": json_format.MessageToDict(self.config),
            "cluster": json_format.MessageToDict(self.cluster),
            "status": KS.Name(self.status),  # type: ignore[arg-type]
            "status_reason": session_pb2.LifecycleReason.Name(self.status_reason),  # type: ignore[arg-type]
            "status_message": self.status_message,
            "sandbox_id": self.sandbox_id,
            "image_ref": self.image_ref,
            "allocations": [allocation_to_json(a) for a in self.allocations],
            "host_ports": list(self.host_ports),
            "service_ports": [json_format.MessageToDict(p) for p in self.service_ports],
            "created_at": _time(self.created_at),
            "started_at": _time(self.started_at),
            "terminated_at": _time(self.terminated_at),
            "exit_code": self.exit_code,
            "restart_request_ids": list(self.restart_request_ids),
        }

    @classmethod
    def from_json(cls, raw: dict[str, Any]) -> KernelRecord:
        config = json_format.ParseDict(raw["config"], agent_pb2.KernelCreationConfig())
        cluster = json_format.ParseDict(raw.get("cluster", {}), agent_pb2.ClusterInfo())
        return cls(
            config=config,
            cluster=cluster,
            status=KS.Value(raw["status"]),
            status_reason=session_pb2.LifecycleReason.Value(
                raw.get("status_reason", "LIFECYCLE_REASON_UNSPECIFIED")
            ),
            status_message=raw.get("status_message", ""),
            sandbox_id=raw.get("sandbox_id", ""),
            image_ref=raw.get("image_ref", ""),
            allocations=[allocation_from_json(a) for a in raw.get("allocations", [])],
            host_ports=[int(p) for p in raw.get("host_ports", [])],
            service_ports=[
                json_format.ParseDict(p, session_pb2.ServicePort())
                for p in raw.get("service_ports", [])
            ],
            created_at=_parse_time(raw.get("created_at")) or datetime.now(UTC),
            started_at=_parse_time(raw.get("started_at")),
            terminated_at=_parse_time(raw.get("terminated_at")),
            exit_code=raw.get("exit_code"),
            restart_request_ids=list(raw.get("restart_request_ids", [])),
        )


class KernelStore:
    """Reads and writes kernel records under `root` (state_dir/kernels)."""

    def __init__(self, root: Path) -> None:
        self.root = root
        root.mkdir(parents=True, exist_ok=True)

    def path_of(self, kernel_id: str) -> Path:
        return self.root / f"{kernel_id}.json"

    def save(self, record: KernelRecord) -> None:
        target = self.path_of(record.kernel_id)
        temporary = target.with_suffix(".json.tmp")
        with temporary.open("w", encoding="utf-8") as out:
            json.dump(record.to_json(), out, indent=1)
            out.flush()
            os.fsync(out.fileno())
        os.replace(temporary, target)

    def delete(self, kernel_id: str) -> None:
        self.path_of(kernel_id).unlink(missing_ok=True)

    def load_all(self) -> list[KernelRecord]:
        records = []
        for path in sorted(self.root.glob("*.json")):
            try:
                records.append(KernelRecord.from_json(json.loads(path.read_text("utf-8"))))
            except (ValueError, KeyError, TypeError, json_format.ParseError) as exc:
                # A damaged record must not keep the agent from starting.
                log.error(
                    "unreadable kernel record skipped", extra={"path": str(path), "error": str(exc)}
                )
        return records
