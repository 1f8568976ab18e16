"""What the runner does for its kernel at start: listen (as root), bootstrap once,
answer pings, load the rest of itself, become the kernel's user, then either run
the batch session's command to completion or serve runs forever. Stdlib only,
python3.9-compatible.

Only what answering the agent's readiness ping needs is imported before the
server accepts; the executors and the command helpers are imported while it does.
"""

from __future__ import annotations

import json
import threading
from pathlib import Path

from . import layout
from .privileges import become, kernel_user
from .server import RunnerServer

# typing stays out of the runner's start; mypy reads any TYPE_CHECKING as true.
TYPE_CHECKING = False
if TYPE_CHECKING:
    from typing import Any

SESSION_BATCH = "batch"


def load_kernel_config(run_dir: Path) -> dict[str, Any]:
    path = run_dir / layout.KERNEL_CONFIG_FILE
    if not path.exists():
        return {}
    config = json.loads(path.read_text("utf-8"))
    if not isinstance(config, dict):
        raise ValueError(f"{path} is not a JSON object")
    return config


def main(argv: list[str] | None = None) -> int:
    run_dir = layout.run_dir()
    work_dir = layout.work_dir()
    server = RunnerServer(run_dir / layout.SOCKET_FILE, work_dir)
    # As root (the run directory is the agent's): from now on the agent's readiness
    # ping connects, and it is answered once the server starts.
    server.listen()
    config = load_kernel_config(run_dir)
    user = kernel_user(config)
    bootstrap_script = str(config.get("bootstrap_script") or "")
    if bootstrap_script:
        from .kernel_commands import run_bootstrap

        run_bootstrap(bootstrap_script, run_dir, work_dir)
    # The kernel is ready from here; runs wait until the runner is set up.
    server.start()
    # Still as root: the runner's own directory may not be readable by the kernel's user.
    from .app_services import ServiceSupervisor
    from .batch_exec import run_batch
    from .kernel_commands import batch_session_then_exit, start_background
    from .query_exec import QueryExecutor

    batch = config.get("session_type") == SESSION_BATCH
    result_file = (run_dir / layout.BATCH_RESULT_FILE).open("wb") if batch else None
    services = ServiceSupervisor.load(work_dir)
    become(user, work_dir)
    executor = QueryExecutor(work_dir, server.query_jobs)
    server.open_runs(run_batch, services)
    command = str(config.get("startup_command") or "")
    if result_file is not None:
        timeout = float(config.get("batch_timeout_seconds") or 0)
        args = (command, timeout, result_file, work_dir, server.close)
        threading.Thread(target=batch_session_then_exit, args=args, daemon=True).start()
    elif command:
        start_background(command, work_dir)
    # The main thread executes query runs, in batch sessions too, until the process exits.
    executor.serve_forever()
    return 0
