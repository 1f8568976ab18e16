"""Following the manager's background tasks (clone, recursive delete, commit) from the CLI."""

from __future__ import annotations

from bai.api.manager.v1 import bgtask_pb2
from bai.cli.context import Context
from bai.client import Client, errors
from bai.client._requests import short_enum_name


def follow_task(
    ctx: Context, client: Client, task_id: str, label: str
) -> bgtask_pb2.BackgroundTask:
    """Watch a background task to its end, noting each new progress on stderr; its last state."""
    last = bgtask_pb2.BackgroundTask()
    shown = ""
    for event in client.tasks.watch_task(task_id=task_id, timeout=None):
        last = event.task
        line = _progress_line(last)
        if line and line != shown and not ctx.json:
            ctx.note(f"{label}: {line}")
            shown = line
    return last


def _progress_line(task: bgtask_pb2.BackgroundTask) -> str:
    if task.total_progress:
        extra = f" {task.message}" if task.message else ""
        return f"{task.current_progress}/{task.total_progress}{extra}"
    return task.message


def finish_task(
    ctx: Context, client: Client, task_id: str, label: str, reason: str, what: str = ""
) -> bgtask_pb2.BackgroundTask:
    """Follow the task to its end (follow_task) and require it DONE (require_done,
    naming it `what`, default `label`); its last state."""
    task = follow_task(ctx, client, task_id, label)
    require_done(task, what or label, reason)
    return task


def require_done(task: bgtask_pb2.BackgroundTask, what: str, reason: str) -> None:
    if task.status != bgtask_pb2.BACKGROUND_TASK_STATUS_DONE:
        state = short_enum_name(bgtask_pb2.BackgroundTaskStatus.DESCRIPTOR, task.status)
        detail = "; ".join(p for p in [task.message, *task.errors] if p) or "no detail"
        raise errors.Internal(f"{what} {state}: {detail}", reason=reason)
