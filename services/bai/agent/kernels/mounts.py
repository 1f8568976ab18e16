"""A kernel's vfolder and extra mounts: checked, defaulted, turned into bind mounts.

The spec checks are pure and cover the whole CreateKernels call (INVALID_FIELD):
targets are absolute once defaulted (a vfolder mounts at /home/work/<name>, a
relative kernel_path is under /home/work, as upstream), carry no `..`, do not
collide or nest, and stay off the paths the kernel itself needs. The host check
(the source exists and is a directory) fails one kernel with
KERNEL_CREATION_FAILED before anything is allocated for it, so a bad mount
leaves no kernel behind. A vfolder's host_path is the folder plus its subpath,
as the manager resolved it; the subpath is only checked.

Ownership: kernels run without a user namespace, so the work user's uid (1000
unless the manager sends one) is the same number on the host. What it writes
into a vfolder is owned by that uid with its umask's modes (0644/0755), which
the storage proxy reads as root or as that uid. For the work user to write at
all, a rw/wd folder's root must be writable by it: when it is not, the agent
(root) hands that one directory, never its content, to the kernel's user.
"""

from __future__ import annotations

import os
import posixpath
from collections.abc import Sequence
from pathlib import Path

from bai.agent.runner.layout import RUN_MOUNT, RUNNER_MOUNT, WORK_DIR
from bai.agent.runtime.base import BindMount
from bai.api.agent.v1 import agent_pb2
from bai.api.common.v1 import session_pb2, storage_pb2
from bai.common.errors import FailedPrecondition, FieldViolation, InvalidArgument

MP = storage_pb2.MountPermission
# The kernel's own mounts: a mount may go below /home/work, never over these or above.
INTERNAL_TARGETS = (WORK_DIR, RUNNER_MOUNT, RUN_MOUNT)
# System trees a mount may not replace or enter.
SYSTEM_TREES = (
    "/proc",
    "/sys",
    "/dev",
    "/etc",
    "/usr",
    "/bin",
    "/sbin",
    "/lib",
    "/lib32",
    "/lib64",
    "/libx32",
    "/boot",
    "/run",
    "/opt/bai",
)
_PERMISSIONS = (MP.MOUNT_PERMISSION_READ_ONLY, MP.MOUNT_PERMISSION_READ_WRITE)
_VFOLDER_PERMISSIONS = (*_PERMISSIONS, MP.MOUNT_PERMISSION_READ_WRITE_DELETE)


def _under(path: str, tree: str) -> bool:
    return path == tree or path.startswith(tree.rstrip("/") + "/")


def target_problem(target: str) -> str | None:
    """Why `target` (absolute, normalized) cannot be a mount point; None if it can."""
    for internal in INTERNAL_TARGETS:
        if _under(internal, target):
            return f"{target} would hide {internal}, which the kernel needs"
    for tree in SYSTEM_TREES:
        if _under(target, tree):
            return f"{target} is inside {tree}, which is reserved"
    return None


def _path_problem(path: str, *, absolute: bool) -> str | None:
    if not path:
        return "is required"
    if "\0" in path:
        return "must not contain NUL"
    if absolute and not path.startswith("/"):
        return f"{path!r} is not absolute"
    if ".." in path.split("/"):
        return f"{path!r} must not contain '..'"
    return None


def _vfolder_target(vf: session_pb2.VFolderMount) -> str:
    raw = vf.kernel_path or vf.name
    return posixpath.normpath(posixpath.join(WORK_DIR, raw))


def _check_vfolder(vf: session_pb2.VFolderMount, where: str) -> list[FieldViolation]:
    problems: list[FieldViolation] = []
    if problem := _path_problem(vf.host_path, absolute=True):
        problems.append(FieldViolation(f"{where}.host_path", problem))
    if vf.kernel_path:
        if problem := _path_problem(vf.kernel_path, absolute=False):
            problems.append(FieldViolation(f"{where}.kernel_path", problem))
    elif not vf.name or "/" in vf.name or "\0" in vf.name or vf.name in (".", ".."):
        problems.append(FieldViolation(f"{where}.name", "must be a plain folder name"))
    if vf.subpath and (problem := _path_problem(vf.subpath, absolute=False)):
        problems.append(FieldViolation(f"{where}.subpath", problem))
    if vf.subpath.startswith("/"):
        problems.append(FieldViolation(f"{where}.subpath", "must be relative to the folder"))
    if vf.permission not in _VFOLDER_PERMISSIONS:
        problems.append(FieldViolation(f"{where}.permission", "must be ro, rw or wd"))
    return problems


def _check_extra(mount: session_pb2.Mount, where: str) -> list[FieldViolation]:
    problems: list[FieldViolation] = []
    if mount.type not in (session_pb2.MOUNT_TYPE_BIND, session_pb2.MOUNT_TYPE_UNSPECIFIED):
        problems.append(FieldViolation(f"{where}.type", "only bind mounts are supported"))
    for field, value in (("source", mount.source), ("target", mount.target)):
        problem = _path_problem(value, absolute=True)
        if problem:
            problems.append(FieldViolation(f"{where}.{field}", problem))
    if mount.permission not in _PERMISSIONS:
        problems.append(FieldViolation(f"{where}.permission", "must be READ_ONLY or READ_WRITE"))
    return problems


def check_mounts(config: agent_pb2.KernelCreationConfig, where: str) -> list[FieldViolation]:
    """Every problem of the kernel's mount specs, as field violations under `where`."""
    problems: list[FieldViolation] = []
    targets: list[tuple[str, str]] = []
    for index, vf in enumerate(config.vfolder_mounts):
        here = f"{where}.vfolder_mounts[{index}]"
        found = _check_vfolder(vf, here)
        problems += found
        if not found:
            targets.append((f"{here}.kernel_path", _vfolder_target(vf)))
    for index, extra in enumerate(config.extra_mounts):
        here = f"{where}.extra_mounts[{index}]"
        found = _check_extra(extra, here)
        problems += found
        if not found:
            targets.append((f"{here}.target", posixpath.normpath(extra.target)))
    for index, (field, target) in enumerate(targets):
        problem = target_problem(target)
        if problem:
            problems.append(FieldViolation(field, problem))
        for other_field, other in targets[:index]:
            if target == other:
                problems.append(FieldViolation(field, f"{target} is also {other_field}"))
            elif _under(target, other) or _under(other, target):
                problems.append(FieldViolation(field, f"{target} nests with {other_field}"))
    return problems


def vfolder_binds(config: agent_pb2.KernelCreationConfig) -> list[BindMount]:
    """The bind mounts of the kernel's vfolders (specs that passed `check_mounts`)."""
    return [
        BindMount(
            Path(vf.host_path),
            _vfolder_target(vf),
            read_only=vf.permission == MP.MOUNT_PERMISSION_READ_ONLY,
        )
        for vf in config.vfolder_mounts
    ]


def kernel_mounts(config: agent_pb2.KernelCreationConfig) -> list[BindMount]:
    """The vfolders' bind mounts, then the extra mounts'."""
    return vfolder_binds(config) + [
        BindMount(
            Path(extra.source),
            posixpath.normpath(extra.target),
            read_only=extra.permission == MP.MOUNT_PERMISSION_READ_ONLY,
        )
        for extra in config.extra_mounts
    ]


def missing_source(config: agent_pb2.KernelCreationConfig) -> FailedPrecondition | None:
    """KERNEL_CREATION_FAILED naming the first mount whose source is not a directory."""
    for mount in kernel_mounts(config):
        if mount.source.is_dir():
            continue
        state = "is not a directory" if mount.source.exists() else "does not exist"
        detail = f"mount source {mount.source} (for {mount.target}) {state}"
        return FailedPrecondition(
            detail,
            reason="KERNEL_CREATION_FAILED",
            metadata={"kernel_id": config.kernel_id, "detail": detail},
        )
    return None


def grant_write(mounts: Sequence[BindMount], uid: int, gid: int) -> None:
    """Let the kernel's user write into the root of each writable vfolder (see above)."""
    if uid == 0 or os.geteuid() != 0:
        return
    for mount in mounts:
        if mount.read_only:
            continue
        info = mount.source.stat()
        writable = (
            (info.st_uid == uid and info.st_mode & 0o200)
            or (info.st_gid == gid and info.st_mode & 0o020)
            or info.st_mode & 0o002
        )
        if not writable:
            os.chown(mount.source, uid, gid)
            os.chmod(mount.source, info.st_mode | 0o700)


def make_mount_points(scratch: Path, mounts: Sequence[BindMount], uid: int, gid: int) -> None:
    """Mount points below /home/work made in the scratch directory beforehand, owned
    by the kernel's user: the runtime would make them (and their parents) root's."""
    for mount in mounts:
        if not _under(mount.target, WORK_DIR) or mount.target == WORK_DIR:
            continue
        relative = Path(mount.target).relative_to(WORK_DIR)
        for depth in range(1, len(relative.parts) + 1):
            directory = scratch.joinpath(*relative.parts[:depth])
            if directory.is_symlink():
                break
            directory.mkdir(mode=0o755, exist_ok=True)
            if uid and os.geteuid() == 0:
                os.lchown(directory, uid, gid)


def validate_all(configs: Sequence[agent_pb2.KernelCreationConfig]) -> None:
    """INVALID_FIELD for every bad mount spec of the call."""
    problems: list[FieldViolation] = []
    for index, config in enumerate(configs):
        problems += check_mounts(config, f"kernels[{index}]")
    if problems:
        raise InvalidArgument(problems)
