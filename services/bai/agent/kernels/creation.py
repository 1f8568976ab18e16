"""Bringing one kernel up: image, ports, scratch, runner config, sandbox, runner ready.

Each step reports its state (PULLING, CREATING, STARTED); any failure undoes
what was done and reports CANCELLED with a reason. Cancellation of the task
means a destroy is in progress: it cleans up, not us.
"""

from __future__ import annotations

import asyncio
import json
import logging
import os
from datetime import UTC, datetime
from pathlib import Path

from bai.agent.kernels.lifecycle import KernelManager
from bai.agent.kernels.mounts import (
    grant_write,
    kernel_mounts,
    make_mount_points,
    vfolder_binds,
)
from bai.agent.kernels.records import KernelRecord
from bai.agent.kernels.sandbox_spec import (
    KernelUser,
    is_batch,
    kernel_user,
    runner_config,
    sandbox_spec,
)
from bai.agent.kernels.service_ports import service_ports
from bai.agent.runner.layout import KERNEL_CONFIG_FILE, SOCKET_FILE
from bai.agent.runtime.base import PortMapping, RuntimeFailure
from bai.api.common.v1 import session_pb2
from bai.api.manager.v1 import agent_registry_pb2 as reg
from bai.common.errors import BaiError

log = logging.getLogger(__name__)

KS = session_pb2.KernelStatus
LR = session_pb2.LifecycleReason

_REASON_OF_ERROR = {
    "IMAGE_NOT_FOUND": LR.LIFECYCLE_REASON_IMAGE_PULL_FAILED,
    "IMAGE_PULL_FAILED": LR.LIFECYCLE_REASON_IMAGE_PULL_FAILED,
    "NO_CAPACITY": LR.LIFECYCLE_REASON_NO_CAPACITY,
}


class KernelStartFailed(Exception):
    """The sandbox started but the kernel never became ready."""


async def prepare_and_start(km: KernelManager, record: KernelRecord) -> None:
    try:
        await _bring_up(km, record)
    except asyncio.CancelledError:
        raise
    except BaiError as exc:
        reason = _REASON_OF_ERROR.get(exc.reason, LR.LIFECYCLE_REASON_FAILED_TO_START)
        await km.cancel_creation(record, reason, exc.message)
    except (RuntimeFailure, KernelStartFailed, OSError, ValueError) as exc:
        await km.cancel_creation(record, LR.LIFECYCLE_REASON_FAILED_TO_START, str(exc))
    except Exception as exc:
        log.exception("kernel creation failed", extra={"kernel_id": record.kernel_id})
        await km.cancel_creation(record, LR.LIFECYCLE_REASON_FAILED_TO_START, f"internal: {exc}")


async def _bring_up(km: KernelManager, record: KernelRecord) -> None:
    ctx, config = km.ctx, record.config
    outcome = await km.images.ensure(
        config.image,
        config.pull_policy,
        on_pull=lambda: km.transition(
            record, KS.KERNEL_STATUS_PULLING, reg.KERNEL_EVENT_TYPE_PULLING
        ),
    )
    record.image_ref = config.image.canonical
    mappings = _publish_ports(km, record, outcome.info.labels)
    scratch = ctx.scratch_dir(record.kernel_id)
    run_dir = ctx.run_dir(record.kernel_id)
    user = kernel_user(config, outcome.info.labels)
    await asyncio.to_thread(_prepare_dirs, record, user, scratch, run_dir)
    await asyncio.to_thread(grant_write, vfolder_binds(config), user.uid, user.gid)
    await asyncio.to_thread(make_mount_points, scratch, kernel_mounts(config), user.uid, user.gid)
    km.transition(record, KS.KERNEL_STATUS_CREATING, reg.KERNEL_EVENT_TYPE_CREATING)
    spec = sandbox_spec(
        record,
        agent_id=ctx.agent_id,
        scratch=scratch,
        run_dir=run_dir,
        runner_dir=km.runner.package_dir,
        command=km.runner.command,
        port_mappings=mappings,
        user=user,
    )
    state = await ctx.runtime.start(spec)
    record.sandbox_id = state.sandbox_id
    ctx.store.save(record)
    if not is_batch(record):
        await wait_runner_ready(km, record)
    record.started_at = datetime.now(UTC)
    km.transition(record, KS.KERNEL_STATUS_RUNNING, reg.KERNEL_EVENT_TYPE_STARTED)
    km.start_watcher(record)


def _publish_ports(
    km: KernelManager, record: KernelRecord, labels: dict[str, str]
) -> list[PortMapping]:
    """Service ports from the image labels and preopen ports, each on a host port."""
    config = record.config
    preopen = list(config.preopen_ports)
    ports = service_ports(labels, preopen, with_image_ports=not config.block_service_ports)
    wanted = sum(len(p.container_ports) for p in ports)
    if config.allocated_host_ports:
        host_ports = list(config.allocated_host_ports)[:wanted]
        km.ctx.ports.restore(record.kernel_id, host_ports)
    else:
        host_ports = km.ctx.ports.take(record.kernel_id, wanted)
    mappings = []
    cursor = iter(host_ports)
    for port in ports:
        del port.host_ports[:]
        for container_port in port.container_ports:
            host_port = next(cursor)
            port.host_ports.append(host_port)
            mappings.append(PortMapping(container_port, host_port))
    record.host_ports = host_ports
    record.service_ports = ports
    km.ctx.store.save(record)
    return mappings


def _prepare_dirs(record: KernelRecord, user: KernelUser, scratch: Path, run_dir: Path) -> None:
    """Scratch (the kernel's /home/work, owned by its user) and the run directory
    (the agent's and the runner's: root's)."""
    config = record.config
    scratch.mkdir(parents=True, exist_ok=True)
    run_dir.mkdir(parents=True, exist_ok=True)
    (run_dir / SOCKET_FILE).unlink(missing_ok=True)
    (run_dir / KERNEL_CONFIG_FILE).write_text(json.dumps(runner_config(record, user)), "utf-8")
    for dotfile in config.dotfiles:
        path = dotfile.path
        if path.startswith("/home/work/"):
            path = path[len("/home/work/") :]
        target = (scratch / path).resolve()
        if path.startswith("/") or not target.is_relative_to(scratch.resolve()):
            log.warning("dotfile outside /home/work skipped", extra={"path": dotfile.path})
            continue
        target.parent.mkdir(parents=True, exist_ok=True)
        target.write_bytes(dotfile.data)
        target.chmod(dotfile.mode or 0o644)
    if user.uid and os.geteuid() == 0:
        for owned in [scratch, *scratch.rglob("*")]:
            os.lchown(owned, user.uid, user.gid)


async def wait_runner_ready(km: KernelManager, record: KernelRecord) -> None:
    """Until the runner answers, or fail when the sandbox exits first or time runs out."""
    client = km.runner.connect(km.socket_path(record.kernel_id))
    ready = asyncio.create_task(client.wait_ready(km.ctx.config.runner_ready_timeout))
    exited = asyncio.create_task(km.ctx.runtime.wait(record.sandbox_id))
    try:
        done, _ = await asyncio.wait({ready, exited}, return_when=asyncio.FIRST_COMPLETED)
    finally:
        for task in (ready, exited):
            task.cancel()
    if ready in done:
        if ready.exception() is None:
            return
        raise KernelStartFailed(f"the kernel runner did not become ready: {ready.exception()}")
    failure = exited.exception()
    if failure is not None:
        raise KernelStartFailed(f"the kernel could not be watched: {failure}")
    code = exited.result().exit_code
    raise KernelStartFailed(f"the kernel exited during start (exit code {code})")
