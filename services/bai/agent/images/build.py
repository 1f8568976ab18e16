"""`bai agent build-image`: build the local Python kernel image.

No image registry is reachable from our machines, but the Debian mirror is, so
the image is a Debian rootfs made with debootstrap (minbase + python3), given a
`work` user (uid 1000) and imported with `docker import`, with the upstream
`ai.backend.*` labels. Its apps: Jupyter (jupyterlab and notebook from PyPI,
installed with pip inside the rootfs into their own virtual environment, whose
`jupyter` is linked into /usr/local/bin) and the intrinsic terminal, which is
the runner's own (Debian has no ttyd package). When debootstrap is unavailable
or fails (or runs past its time limit), the rootfs is assembled from the host's own python3, its
stdlib and the shared libraries they need (`host_rootfs.py`).

The rootfs directory is kept (`<rootfs_dir>/<sanitized ref>/`, with
`<sanitized ref>.labels.json` beside it) for the process runtime. The build is
idempotent: the image carries a hash of its recipe, and a build whose recipe
matches an existing image and rootfs does nothing unless forced.
"""

from __future__ import annotations

import argparse
import fcntl
import hashlib
import json
import re
import shutil
import subprocess
import sys
import time
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import asdict, dataclass, field
from pathlib import Path

from bai.agent.images import host_rootfs

CANONICAL_REF = "bai.local/stable/python:3.11"
EXTRA_TAGS = ("bai.local/stable/python:latest",)
DEFAULT_ROOTFS_DIR = Path("/var/lib/bai/rootfs")
DEFAULT_MIRROR = "http://deb.debian.org/debian"
LABEL_BUILD_RECIPE = "ai.bai.build-recipe"
LABEL_BUILD_METHOD = "ai.bai.build-method"
DEBOOTSTRAP_TIMEOUT_SECONDS = 300.0
PIP_TIMEOUT_SECONDS = 600.0
# Jupyter's virtual environment in the image (it sees the system's packages too).
APPS_VENV = "/opt/jupyter"
HOST_CA_SOURCE = "/etc/ssl/certs/ca-certificates.crt"
# Where the host's CA bundle sits in the rootfs while pip runs.
HOST_CA_BUNDLE = "/tmp/bai-build-ca.crt"
WORK_USER = "work"
WORK_UID = 1000
WORK_DIR = "/home/work"
IMAGE_ENV = {
    "PATH": "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin",
    "LANG": "C.UTF-8",
    "HOME": WORK_DIR,
}
# Changing how images are built without changing the recipe: bump this.
BUILDER_REVISION = 2


class BuildFailed(RuntimeError):
    """The image could not be built."""


@dataclass(frozen=True)
class Recipe:
    suite: str = "bookworm"
    variant: str = "minbase"
    packages: tuple[str, ...] = ("python3", "python3-venv")
    # Installed into APPS_VENV; pinned so that a recipe builds the same image.
    pip_packages: tuple[str, ...] = ("jupyterlab==4.6.6", "notebook==7.6.5")
    labels: dict[str, str] = field(
        default_factory=lambda: {
            "ai.backend.kernelspec": "1",
            "ai.backend.features": "query batch uid-match",
            "ai.backend.resource.min.cpu": "1",
            "ai.backend.resource.min.mem": "64m",
            "ai.backend.base-distro": "debian12",
            "ai.backend.runtime-type": "python",
            "ai.backend.runtime-path": "/usr/bin/python3",
            "ai.backend.service-ports": "jupyter:http:8091,jupyterlab:http:8090",
        }
    )

    def digest(self) -> str:
        content = {"revision": BUILDER_REVISION, **asdict(self)}
        encoded = json.dumps(content, sort_keys=True).encode()
        return hashlib.sha256(encoded).hexdigest()[:16]


@dataclass(frozen=True)
class BuildResult:
    ref: str
    method: str
    rootfs: Path
    skipped: bool
    seconds: float


def sanitize_ref(ref: str) -> str:
    """An image reference as one directory name: "bai.local/stable/python:3.11" ->
    "bai.local_stable_python_3.11"."""
    return re.sub(r"[^A-Za-z0-9_.-]", "_", ref)


def rootfs_path(rootfs_dir: Path, ref: str) -> Path:
    return rootfs_dir / sanitize_ref(ref)


def labels_path(rootfs_dir: Path, ref: str) -> Path:
    return rootfs_dir / f"{sanitize_ref(ref)}.labels.json"


def image_label(ref: str, label: str) -> str | None:
    """A label of a local image; None when the image is absent."""
    template = "{{ json .Config.Labels }}"
    found = subprocess.run(
        ["docker", "image", "inspect", "--format", template, ref],
        capture_output=True,
        text=True,
    )
    if found.returncode != 0:
        return None
    labels = json.loads(found.stdout) or {}
    return str(labels.get(label, ""))


def docker_changes(labels: dict[str, str]) -> list[str]:
    """`docker import --change` arguments (Dockerfile syntax; JSON strings are valid quoting)."""
    changes = [f"LABEL {key}={json.dumps(value)}" for key, value in sorted(labels.items())]
    changes += [f"ENV {key}={json.dumps(value)}" for key, value in IMAGE_ENV.items()]
    changes.append(f"WORKDIR {WORK_DIR}")
    args: list[str] = []
    for change in changes:
        args += ["--change", change]
    return args


def add_work_user(root: Path) -> None:
    """The unprivileged `work` user, written straight into the rootfs's account files."""
    etc = root / "etc"
    etc.mkdir(parents=True, exist_ok=True)
    entries = {
        "passwd": f"{WORK_USER}:x:{WORK_UID}:{WORK_UID}::{WORK_DIR}:/bin/sh\n",
        "group": f"{WORK_USER}:x:{WORK_UID}:\n",
        "shadow": f"{WORK_USER}:*:19000:0:99999:7:::\n",
    }
    for name, line in entries.items():
        path = etc / name
        existing = path.read_text() if path.exists() else ""
        if not any(row.startswith(f"{WORK_USER}:") for row in existing.splitlines()):
            path.write_text(existing + line)
    home = root / WORK_DIR.lstrip("/")
    home.mkdir(parents=True, exist_ok=True)
    shutil.chown(home, WORK_UID, WORK_UID)


def debootstrap(target: Path, recipe: Recipe, mirror: str, timeout: float) -> None:
    if shutil.which("debootstrap") is None:
        install = ["apt-get", "install", "-y", "--no-install-recommends", "debootstrap"]
        subprocess.run(install, check=True, capture_output=True, timeout=timeout)
    command = [
        "debootstrap",
        f"--variant={recipe.variant}",
        f"--include={','.join(recipe.packages)}",
        recipe.suite,
        str(target),
        mirror,
    ]
    subprocess.run(command, check=True, capture_output=True, timeout=timeout)
    # Package caches and indexes only make the image bigger.
    for leftover in ("var/cache/apt/archives", "var/lib/apt/lists"):
        for path in (target / leftover).glob("*"):
            if path.is_file():
                path.unlink()


def install_apps(root: Path, recipe: Recipe, timeout: float) -> None:
    """pip inside the rootfs (chroot), with the host's resolver and CA bundle (a proxy
    may intercept TLS) and a clean environment (the host's pip settings name files the
    rootfs does not have)."""
    if not recipe.pip_packages:
        return
    resolv = root / "etc/resolv.conf"
    saved = resolv.read_bytes() if resolv.is_file() and not resolv.is_symlink() else None
    resolv.unlink(missing_ok=True)
    shutil.copyfile("/etc/resolv.conf", resolv)
    host_ca = root / HOST_CA_BUNDLE.lstrip("/")
    host_ca.parent.mkdir(parents=True, exist_ok=True)
    shutil.copyfile(HOST_CA_SOURCE, host_ca)
    environ = {
        "PATH": IMAGE_ENV["PATH"],
        "HOME": "/root",
        "LANG": "C.UTF-8",
        "PIP_CERT": HOST_CA_BUNDLE,
        "PIP_NO_CACHE_DIR": "1",
        "PIP_DISABLE_PIP_VERSION_CHECK": "1",
    }
    pip = f"{APPS_VENV}/bin/pip"
    steps = [
        ["python3", "-m", "venv", "--system-site-packages", APPS_VENV],
        [pip, "install", "--no-compile", "--progress-bar", "off", *recipe.pip_packages],
    ]
    try:
        for step in steps:
            subprocess.run(
                ["chroot", str(root), *step],
                check=True,
                capture_output=True,
                timeout=timeout,
                env=environ,
            )
    finally:
        host_ca.unlink(missing_ok=True)
        resolv.unlink(missing_ok=True)
        if saved is not None:
            resolv.write_bytes(saved)
    link = root / "usr/local/bin/jupyter"
    link.parent.mkdir(parents=True, exist_ok=True)
    link.unlink(missing_ok=True)
    link.symlink_to(f"{APPS_VENV}/bin/jupyter")


def docker_import(root: Path, ref: str, labels: dict[str, str]) -> None:
    tar = subprocess.Popen(
        ["tar", "--numeric-owner", "-C", str(root), "-c", "."], stdout=subprocess.PIPE
    )
    imported = subprocess.run(
        ["docker", "import", *docker_changes(labels), "-", ref],
        stdin=tar.stdout,
        capture_output=True,
        text=True,
    )
    if tar.stdout is not None:
        tar.stdout.close()
    if tar.wait() != 0 or imported.returncode != 0:
        raise BuildFailed(f"docker import failed: {imported.stderr.strip()}")


@contextmanager
def build_lock(rootfs_dir: Path) -> Iterator[None]:
    """One build at a time on this host (test sessions may race each other)."""
    rootfs_dir.mkdir(parents=True, exist_ok=True)
    with open(rootfs_dir / ".build.lock", "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        yield


def build_image(
    *,
    ref: str = CANONICAL_REF,
    rootfs_dir: Path = DEFAULT_ROOTFS_DIR,
    mirror: str = DEFAULT_MIRROR,
    method: str = "auto",
    force: bool = False,
    recipe: Recipe | None = None,
) -> BuildResult:
    recipe = recipe or Recipe()
    started = time.monotonic()
    target = rootfs_path(rootfs_dir, ref)
    with build_lock(rootfs_dir):
        up_to_date = image_label(ref, LABEL_BUILD_RECIPE) == recipe.digest()
        if up_to_date and target.is_dir() and not force:
            used = image_label(ref, LABEL_BUILD_METHOD) or "unknown"
            _name_rootfs(rootfs_dir, ref)
            return BuildResult(ref, used, target, True, time.monotonic() - started)
        staging = rootfs_dir / f".{sanitize_ref(ref)}.staging"
        shutil.rmtree(staging, ignore_errors=True)
        used = _make_rootfs(staging, recipe, mirror, method)
        add_work_user(staging)
        labels = {**recipe.labels, LABEL_BUILD_RECIPE: recipe.digest(), LABEL_BUILD_METHOD: used}
        docker_import(staging, ref, labels)
        for tag in EXTRA_TAGS if ref == CANONICAL_REF else ():
            subprocess.run(["docker", "tag", ref, tag], check=True, capture_output=True)
        shutil.rmtree(target, ignore_errors=True)
        staging.rename(target)
        write_rootfs_metadata(rootfs_dir, ref, labels)
    return BuildResult(ref, used, target, False, time.monotonic() - started)


def write_rootfs_metadata(rootfs_dir: Path, ref: str, labels: dict[str, str]) -> None:
    """The process runtime's metadata: the labels and the references the rootfs answers
    to, so that its agent reports the image by name like the Docker runtime does."""
    tags = list(EXTRA_TAGS) if ref == CANONICAL_REF else []
    metadata = {"labels": labels, "ref": ref, "tags": tags}
    labels_path(rootfs_dir, ref).write_text(json.dumps(metadata, indent=2, sort_keys=True))


def _name_rootfs(rootfs_dir: Path, ref: str) -> None:
    """Give a rootfs built before its metadata named it (plain labels) its references."""
    path = labels_path(rootfs_dir, ref)
    try:
        metadata = json.loads(path.read_text())
    except (OSError, ValueError):
        return
    if isinstance(metadata, dict) and "labels" not in metadata:
        write_rootfs_metadata(rootfs_dir, ref, {str(k): str(v) for k, v in metadata.items()})


def _make_rootfs(staging: Path, recipe: Recipe, mirror: str, method: str) -> str:
    if method in ("auto", "debootstrap"):
        try:
            debootstrap(staging, recipe, mirror, DEBOOTSTRAP_TIMEOUT_SECONDS)
            install_apps(staging, recipe, PIP_TIMEOUT_SECONDS)
            return "debootstrap"
        except (OSError, subprocess.SubprocessError) as exc:
            if method == "debootstrap":
                raise BuildFailed(f"debootstrap failed: {_describe(exc)}") from exc
            print(f"debootstrap failed ({_describe(exc)}); copying the host's python3")
            shutil.rmtree(staging, ignore_errors=True)
    host_rootfs.assemble(staging)
    return "host-copy"


def _describe(exc: BaseException) -> str:
    stderr = getattr(exc, "stderr", None)
    if isinstance(stderr, bytes) and stderr.strip():
        return stderr.decode(errors="replace").strip().splitlines()[-1]
    return str(exc)


def build_main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="bai agent build-image", description="Build the local Python kernel image."
    )
    parser.add_argument("--force", action="store_true", help="rebuild even when up to date")
    parser.add_argument("--tag", default=CANONICAL_REF, help="image reference to build")
    parser.add_argument("--rootfs-dir", type=Path, default=DEFAULT_ROOTFS_DIR)
    parser.add_argument("--mirror", default=DEFAULT_MIRROR, help="Debian mirror URL")
    parser.add_argument("--method", choices=("auto", "debootstrap", "host-copy"), default="auto")
    args = parser.parse_args(argv)
    try:
        result = build_image(
            ref=args.tag,
            rootfs_dir=args.rootfs_dir,
            mirror=args.mirror,
            method=args.method,
            force=args.force,
        )
    except (BuildFailed, OSError, subprocess.SubprocessError) as exc:
        print(f"build-image: {exc}", file=sys.stderr)
        return 1
    state = "up to date" if result.skipped else f"built with {result.method}"
    print(f"{result.ref}: {state} in {result.seconds:.1f}s (rootfs {result.rootfs})")
    return 0


if __name__ == "__main__":
    raise SystemExit(build_main())
