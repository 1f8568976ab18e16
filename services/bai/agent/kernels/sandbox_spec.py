"""Pure decisions about one kernel's sandbox: environment, runner config, mounts, limits."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from decimal import Decimal
from pathlib import Path
from typing import Any

from bai.agent.kernels.mounts import kernel_mounts
from bai.agent.kernels.records import KernelRecord
from bai.agent.resources.cpu import cpuset_of
from bai.agent.runner.layout import RUN_MOUNT, RUNNER_MOUNT, WORK_DIR
from bai.agent.runtime.base import (
    LABEL_AGENT_ID,
    LABEL_KERNEL_ID,
    LABEL_SESSION_ID,
    BindMount,
    PortMapping,
    SandboxSpec,
)
from bai.api.agent.v1 import agent_pb2
from bai.api.common.v1 import session_pb2
from bai.common.image_labels import LABEL_FEATURES

SCRATCH_MOUNT = WORK_DIR
DEFAULT_SHMEM = 64 * 1024 * 1024
FEATURE_UID_MATCH = "uid-match"
# The `work` user of uid-match images (and of the local kernel image).
DEFAULT_WORK_UID = 1000
DEFAULT_WORK_GID = 1000

_SESSION_TYPE_NAMES: dict[int, str] = {
    session_pb2.SESSION_TYPE_UNSPECIFIED: "interactive",
    session_pb2.SESSION_TYPE_INTERACTIVE: "interactive",
    session_pb2.SESSION_TYPE_BATCH: "batch",
    session_pb2.SESSION_TYPE_INFERENCE: "inference",
    session_pb2.SESSION_TYPE_SYSTEM: "system",
}


@dataclass(frozen=True)
class KernelUser:
    """Who user code runs as in the kernel; uid 0: the image's own user (root)."""

    uid: int
    gid: int
    supplementary_gids: tuple[int, ...] = ()


ROOT_USER = KernelUser(0, 0)


def kernel_user(config: agent_pb2.KernelCreationConfig, labels: Mapping[str, str]) -> KernelUser:
    """Images with the uid-match feature have a `work` user: user code runs as the uid
    and gids the manager sends, or as 1000:1000 where it sends 0 (as it does today).
    Other images may have no such user: their code runs as root, as upstream does."""
    if FEATURE_UID_MATCH not in labels.get(LABEL_FEATURES, "").split():
        return ROOT_USER
    return KernelUser(
        uid=config.uid or DEFAULT_WORK_UID,
        gid=config.main_gid or DEFAULT_WORK_GID,
        supplementary_gids=tuple(config.supplementary_gids),
    )


def session_type_name(value: int) -> str:
    return _SESSION_TYPE_NAMES.get(value, "interactive")


def is_batch(record: KernelRecord) -> bool:
    return record.config.session_type == session_pb2.SESSION_TYPE_BATCH


def cluster_environ(record: KernelRecord) -> dict[str, str]:
    """BAI_CLUSTER_* and the same under BACKENDAI_CLUSTER_* (upstream images)."""
    cluster, config = record.cluster, record.config
    multi = cluster.mode == session_pb2.CLUSTER_MODE_MULTI_NODE
    hostnames = list(cluster.hostnames) or [config.cluster_hostname or "main1"]
    values = {
        "MODE": "multi-node" if multi else "single-node",
        "SIZE": str(cluster.size or len(hostnames)),
        "REPLICAS": ",".join(f"{role}:{n}" for role, n in sorted(cluster.replicas.items()))
        or f"{config.cluster_role or 'main'}:1",
        "HOSTS": ",".join(hostnames),
        "HOST": config.cluster_hostname or hostnames[0],
        "ROLE": config.cluster_role or "main",
        "IDX": str(config.cluster_idx or 1),
        "LOCAL_RANK": str(config.local_rank),
    }
    environ: dict[str, str] = {}
    for prefix in ("BAI_CLUSTER_", "BACKENDAI_CLUSTER_"):
        environ.update({prefix + key: value for key, value in values.items()})
    return environ


def kernel_environ(record: KernelRecord, user: KernelUser) -> dict[str, str]:
    """User environment, then plugin environment, then the agent's own variables."""
    config = record.config
    environ = dict(config.environ)
    for allocation in record.allocations:
        environ.update(allocation.environ)
    for prefix in ("BAI_", "BACKENDAI_"):
        environ[prefix + "KERNEL_ID"] = config.kernel_id
        environ[prefix + "SESSION_ID"] = config.session_id
        environ[prefix + "SESSION_NAME"] = config.session_name
        environ[prefix + "SESSION_TYPE"] = session_type_name(config.session_type)
    environ.update(cluster_environ(record))
    environ.setdefault("HOME", SCRATCH_MOUNT)
    if user.uid:
        environ["LOCAL_USER_ID"] = str(user.uid)
        environ["LOCAL_GROUP_ID"] = str(user.gid)
    return environ


def runner_config(record: KernelRecord, user: KernelUser) -> dict[str, Any]:
    """kernel.json, read by the in-kernel runner at start (as root: it switches to
    `user` after the bootstrap script)."""
    config = record.config
    timeout = (
        config.batch_timeout.ToTimedelta().total_seconds()
        if config.HasField("batch_timeout")
        else 0
    )
    return {
        "kernel_id": config.kernel_id,
        "session_id": config.session_id,
        "session_type": session_type_name(config.session_type),
        "startup_command": config.startup_command,
        "bootstrap_script": config.bootstrap_script,
        "batch_timeout_seconds": timeout,
        "uid": user.uid,
        "gid": user.gid,
        "supplementary_gids": list(user.supplementary_gids),
    }


def _slot(record: KernelRecord, name: str) -> Decimal:
    total = Decimal(0)
    for allocation in record.allocations:
        total += allocation.slots.get(name, Decimal(0))
    if total == 0:
        raw = record.config.resource_slots.slots.get(name, "0")
        total = Decimal(raw)
    return total


def sandbox_spec(
    record: KernelRecord,
    *,
    agent_id: str,
    scratch: Path,
    run_dir: Path,
    runner_dir: Path,
    command: list[str],
    port_mappings: list[PortMapping],
    user: KernelUser,
) -> SandboxSpec:
    config = record.config
    devices: list[str] = []
    gpu_ids: list[str] = []
    cpuset = ""
    for allocation in record.allocations:
        devices.extend(allocation.device_paths)
        if allocation.plugin == "cuda":
            gpu_ids.extend(share.device_id for share in allocation.shares)
        elif allocation.plugin == "cpu":
            cpuset = cpuset_of(allocation)
    mounts = [
        BindMount(scratch, SCRATCH_MOUNT),
        BindMount(run_dir, RUN_MOUNT),
        BindMount(runner_dir, RUNNER_MOUNT, read_only=True),
        *kernel_mounts(config),
    ]
    return SandboxSpec(
        kernel_id=config.kernel_id,
        session_id=config.session_id,
        agent_id=agent_id,
        image=record.image_ref,
        command=command,
        environ=kernel_environ(record, user),
        cpu_limit=_slot(record, "cpu"),
        mem_limit=int(_slot(record, "mem")),
        shmem_bytes=config.resource_opts.shmem_bytes or DEFAULT_SHMEM,
        mounts=mounts,
        ports=port_mappings,
        labels={
            LABEL_AGENT_ID: agent_id,
            LABEL_KERNEL_ID: config.kernel_id,
            LABEL_SESSION_ID: config.session_id,
        },
        hostname=config.cluster_hostname or "main1",
        devices=sorted(set(devices)),
        gpu_device_ids=sorted(set(gpu_ids)),
        cpuset=cpuset,
    )
