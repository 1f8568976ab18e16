"""The fallback rootfs: the host's python3 with its stdlib, a shell, a few tools,
and every shared library they load (found with ldd). Enough for the kernel
runner in both modes; no package manager."""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
import sysconfig
from pathlib import Path

# What the runner and simple batch commands need besides python3.
TOOLS = ("sh", "env", "cat", "ls", "mkdir", "rm", "sleep", "echo", "id", "true", "false")
_LDD_PATH = re.compile(r"(/\S+)")


def assemble(root: Path) -> None:
    # The system interpreter first: a version manager's python3 may be a shell shim.
    system = Path("/usr/bin/python3")
    python = Path(os.path.realpath(system if system.exists() else sys.executable))
    binaries = [python]
    for tool in TOOLS:
        found = shutil.which(tool)
        if found is not None:
            binaries.append(Path(found))
    for binary in binaries:
        _copy_with_libraries(binary, root)
    _link(root, "usr/bin/python3", python)
    _link(root, "bin/sh", Path(os.path.realpath("/bin/sh")))
    stdlib = Path(_host_python_config(python, "stdlib"))
    _copy_tree(stdlib, root)
    for name in ("proc", "sys", "dev", "tmp", "etc", "root"):
        (root / name).mkdir(parents=True, exist_ok=True)
    (root / "tmp").chmod(0o1777)
    (root / "etc" / "passwd").write_text("root:x:0:0:root:/root:/bin/sh\n")
    (root / "etc" / "group").write_text("root:x:0:\n")


def _host_python_config(python: Path, key: str) -> str:
    if Path(sys.executable).resolve() == python:
        return str(sysconfig.get_paths()[key])
    script = f"import sysconfig; print(sysconfig.get_paths()[{key!r}])"
    return subprocess.run(
        [str(python), "-c", script], check=True, capture_output=True, text=True
    ).stdout.strip()


def _copy_with_libraries(binary: Path, root: Path) -> None:
    _copy_file(binary, root)
    for library in _libraries(binary):
        _copy_file(library, root)


def _libraries(binary: Path) -> list[Path]:
    listed = subprocess.run(["ldd", str(binary)], capture_output=True, text=True)
    if listed.returncode != 0:
        # Static binaries and scripts have no libraries to copy.
        return []
    return [Path(path) for path in _LDD_PATH.findall(listed.stdout) if Path(path).exists()]


def _copy_file(source: Path, root: Path) -> None:
    # Copy both the link and its target so the paths the loader asks for exist.
    target = root / str(source).lstrip("/")
    target.parent.mkdir(parents=True, exist_ok=True)
    real = Path(os.path.realpath(source))
    if real != source:
        _copy_file(real, root)
        if not target.exists() and not target.is_symlink():
            target.symlink_to(real)
        return
    if not target.exists():
        shutil.copy2(source, target)


def _copy_tree(source: Path, root: Path) -> None:
    target = root / str(source).lstrip("/")
    ignore = shutil.ignore_patterns("__pycache__", "test", "tests", "idlelib", "tkinter")
    shutil.copytree(source, target, symlinks=True, ignore=ignore, dirs_exist_ok=True)
    dynload = Path(str(source), "lib-dynload")
    if dynload.is_dir():
        for module in dynload.glob("*.so"):
            _copy_with_libraries(module, root)


def _link(root: Path, name: str, target: Path) -> None:
    path = root / name
    path.parent.mkdir(parents=True, exist_ok=True)
    if not path.exists() and not path.is_symlink():
        path.symlink_to(target)
