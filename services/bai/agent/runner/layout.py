"""Where the runner and its files live inside a sandbox.

Stdlib only and python3.9-compatible: the runner imports this module inside
kernel images. The agent bind-mounts this package directory read-only at
RUNNER_MOUNT and a per-kernel host directory read-write at RUN_MOUNT; the
runner's socket and result files appear in that host directory, so the agent
reaches them without entering the sandbox. A runner started directly on a host
(the process runtime, tests) points the two directories elsewhere with the
environment variables below.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from pathlib import Path

RUNNER_MOUNT = "/opt/bai/runner"
RUN_MOUNT = "/opt/bai/run"
WORK_DIR = "/home/work"

# Overrides read by the runner (not by the agent).
ENV_RUN_DIR = "BAI_RUNNER_RUN_DIR"
ENV_WORK_DIR = "BAI_RUNNER_WORK_DIR"

KERNEL_CONFIG_FILE = "kernel.json"
SOCKET_FILE = "runner.sock"
BATCH_RESULT_FILE = "batch_result.json"
BOOTSTRAP_DONE_FILE = "bootstrap.done"
OUTPUT_DIR = ".output"

RUNNER_SCRIPT = "kernel_runner.py"

# Upstream Backend.AI images ship their own interpreter here (krunner); the
# image's python3 may be missing or too old.
UPSTREAM_PYTHON = "/opt/backend.ai/bin/python"


def runner_package_dir() -> Path:
    """The host directory to bind-mount read-only at RUNNER_MOUNT."""
    return Path(__file__).resolve().parent


def compile_runner_package(package_dir: Path | None = None) -> None:
    """Byte-code for the runner's modules, written next to them for this interpreter's
    version (best effort): a sandbox python of the same version cannot write any into
    the read-only mount, and would otherwise compile the runner on every start."""
    import compileall  # the agent's only; the runner never calls this

    compileall.compile_dir(package_dir or runner_package_dir(), maxlevels=0, quiet=2)


def copy_runner_package(target: Path) -> Path:
    """Copy the runner's modules to `target` (the agent's only).

    An agent that runs in a container hands dockerd host paths: it copies the
    runner into a directory that has the same path on the host and in its
    container (its state volume) and mounts it from there.
    """
    import shutil  # the agent's only; the runner never calls this

    target.mkdir(parents=True, exist_ok=True)
    for module in runner_package_dir().glob("*.py"):
        shutil.copy2(module, target / module.name)
    return target


def run_dir(environ: Mapping[str, str] = os.environ) -> Path:
    return Path(environ.get(ENV_RUN_DIR) or RUN_MOUNT)


def work_dir(environ: Mapping[str, str] = os.environ) -> Path:
    return Path(environ.get(ENV_WORK_DIR) or WORK_DIR)


def runner_command() -> list[str]:
    """argv of a sandbox's main process: the image's python3 runs the runner, or the
    upstream interpreter does when there is no python3. One python starts: the runner
    checks its own version and hands over to the upstream one when it is too old."""
    script = f"{RUNNER_MOUNT}/{RUNNER_SCRIPT}"
    shell = (
        f"if command -v python3 >/dev/null 2>&1; then exec python3 {script} {UPSTREAM_PYTHON}; fi; "
        f"if [ -x {UPSTREAM_PYTHON} ]; then exec {UPSTREAM_PYTHON} {script}; fi; "
        'echo "bai: no python >= 3.9 in this image" >&2; exit 127'
    )
    return ["/bin/sh", "-c", shell]
