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
MIN_PYTHON = (3, 9)

# Upstream Backend.AI images ship their own interpreter here (krunner); the
# image's python3 may be missing or too old.
UPSTREAM_PYTHON = "/opt/backend.ai/bin/python"


def runner_package_dir() -> Path:
    """The host directory to bind-mount read-only at RUNNER_MOUNT."""
    return Path(__file__).resolve().parent


def run_dir(environ: Mapping[str, str] = os.environ) -> Path:
    return Path(environ.get(ENV_RUN_DIR) or RUN_MOUNT)


def work_dir(environ: Mapping[str, str] = os.environ) -> Path:
    return Path(environ.get(ENV_WORK_DIR) or WORK_DIR)


def runner_command() -> list[str]:
    """argv of a sandbox's main process: the first python >= 3.9 found runs the runner."""
    script = f"{RUNNER_MOUNT}/{RUNNER_SCRIPT}"
    version_ok = f"import sys; sys.exit(sys.version_info[:2] < {MIN_PYTHON})"
    shell = (
        f"for py in python3 {UPSTREAM_PYTHON}; do "
        f'if command -v "$py" >/dev/null 2>&1 && "$py" -c "{version_ok}"; then '
        f'exec "$py" {script}; fi; done; '
        'echo "bai: no python >= 3.9 in this image" >&2; exit 127'
    )
    return ["/bin/sh", "-c", shell]
