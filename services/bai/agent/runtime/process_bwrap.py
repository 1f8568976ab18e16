"""The bubblewrap command line of one sandbox (a pure function of the spec).

The image's rootfs is bound as `/` read-write only while bwrap creates the mount
points, then remounted read-only (`--remount-ro /`): kernels write to their
mounts, /tmp and /dev/shm, never to the shared image. Mount points missing from
the image are created in it once (empty directories), as bwrap cannot create
them in a read-only tree. The sandbox shares the host's network (and so its
/etc/resolv.conf and /etc/hosts); it keeps Docker's default capability set.
"""

from __future__ import annotations

from pathlib import Path

from bai.agent.runtime.base import SandboxSpec

DEFAULT_PATH = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"
# Docker's default /dev/shm size.
DEFAULT_SHM_BYTES = 64 * 1024 * 1024
# The capabilities Docker grants a container by default.
DEFAULT_CAPABILITIES = (
    "CAP_AUDIT_WRITE",
    "CAP_CHOWN",
    "CAP_DAC_OVERRIDE",
    "CAP_FOWNER",
    "CAP_FSETID",
    "CAP_KILL",
    "CAP_MKNOD",
    "CAP_NET_BIND_SERVICE",
    "CAP_NET_RAW",
    "CAP_SETFCAP",
    "CAP_SETGID",
    "CAP_SETPCAP",
    "CAP_SETUID",
    "CAP_SYS_CHROOT",
)
HOST_NETWORK_FILES = ("/etc/resolv.conf", "/etc/hosts")


def port_environ(spec: SandboxSpec) -> dict[str, str]:
    """BAI_PORT_<container port>=<host port>: with the host's network a kernel cannot
    be given its container port, so it learns which host port to listen on."""
    return {f"BAI_PORT_{p.container_port}": str(p.host_port) for p in spec.ports}


def sandbox_environ(spec: SandboxSpec, image_env: dict[str, str]) -> dict[str, str]:
    environ = {"PATH": DEFAULT_PATH, **image_env, **spec.environ, **port_environ(spec)}
    environ.setdefault("HOSTNAME", sandbox_hostname(spec))
    return environ


def sandbox_hostname(spec: SandboxSpec) -> str:
    return spec.hostname or spec.kernel_id[:12]


def host_network_files(rootfs: Path) -> list[str]:
    """Host files to show in the sandbox: only where the image has a plain file or
    nothing (binding onto a symlink would follow it out of the rootfs)."""
    if not (rootfs / "etc").is_dir() or (rootfs / "etc").is_symlink():
        return []
    return [
        name
        for name in HOST_NETWORK_FILES
        if Path(name).is_file() and not (rootfs / name.lstrip("/")).is_symlink()
    ]


def spec_problem(spec: SandboxSpec) -> str | None:
    """Why bwrap would refuse `spec`, found before anything is created; None if nothing."""
    if not spec.command:
        return "the sandbox needs a command"
    for mount in spec.mounts:
        if not mount.target.startswith("/"):
            return f"mount target {mount.target} is not absolute"
        if not mount.source.exists():
            return f"mount source {mount.source} does not exist"
    for device in spec.devices:
        if not Path(device).exists():
            return f"device {device} does not exist"
    if not spec.work_dir.startswith("/"):
        return f"work_dir {spec.work_dir} is not absolute"
    return None


def bwrap_arguments(
    spec: SandboxSpec,
    rootfs: Path,
    image_env: dict[str, str],
    host_files: list[str],
) -> list[str]:
    """bwrap's arguments after the program name (the supervisor adds --json-status-fd)."""
    shm = spec.shmem_bytes or DEFAULT_SHM_BYTES
    args = [
        "--unshare-pid",
        "--unshare-ipc",
        "--unshare-uts",
        "--hostname",
        sandbox_hostname(spec),
        "--bind",
        str(rootfs),
        "/",
        "--proc",
        "/proc",
        "--dev",
        "/dev",
        "--perms",
        "1777",
        "--tmpfs",
        "/tmp",
        "--perms",
        "1777",
        "--size",
        str(shm),
        "--tmpfs",
        "/dev/shm",
    ]
    for name in host_files:
        args += ["--ro-bind", name, name]
    for device in spec.devices:
        args += ["--dev-bind", device, device]
    for mount in spec.mounts:
        args += ["--ro-bind" if mount.read_only else "--bind", str(mount.source), mount.target]
    args += ["--dir", spec.work_dir, "--remount-ro", "/", "--chdir", spec.work_dir]
    args.append("--clearenv")
    for key, value in sandbox_environ(spec, image_env).items():
        args += ["--setenv", key, value]
    args += ["--cap-drop", "ALL"]
    for capability in DEFAULT_CAPABILITIES:
        args += ["--cap-add", capability]
    return [*args, "--", *spec.command]


def open_mount_points(rootfs: Path, spec: SandboxSpec) -> None:
    """Create the mount points' parents in the image as 0755.

    bwrap creates missing ones 0700 (owned by root), which a kernel that drops
    to the work user could not traverse to reach /opt/bai/runner.
    """
    for mount in spec.mounts:
        relative = Path(mount.target).relative_to("/")
        for depth in range(1, len(relative.parts)):
            directory = rootfs.joinpath(*relative.parts[:depth])
            if directory.is_symlink():
                break
            directory.mkdir(mode=0o755, exist_ok=True)
            if directory.stat().st_mode & 0o755 != 0o755:
                directory.chmod(directory.stat().st_mode | 0o755)
