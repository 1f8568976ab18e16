"""``bai session create``: its options (shared with ``bai run``) and the waiting for RUNNING."""

from __future__ import annotations

import argparse
import json
from dataclasses import dataclass
from typing import Any

from bai.api.common.v1 import session_pb2 as common_session_pb2
from bai.api.common.v1 import storage_pb2
from bai.api.manager.v1 import session_pb2
from bai.cli.admin._common import UUID, project_id
from bai.cli.context import Context, UsageError
from bai.cli.fields import key_value_map, slot_value
from bai.cli.output import to_dict
from bai.cli.progress import TERMINAL, follow_startup, status_name, transition_text
from bai.cli.units import parse_duration, parse_size
from bai.cli.vfolder_cmd import PERMISSIONS
from bai.client import Client

BOOTSTRAP_LIMIT = 64 * 1024


def add_create_arguments(p: argparse.ArgumentParser) -> None:
    """IMAGE and the session options, for ``session create`` and ``run``."""
    p.add_argument("image", metavar="IMAGE", help="image: canonical name, name:tag or alias")
    g = p.add_argument_group("session options")
    g.add_argument("--name", help="4-64 of [A-Za-z0-9._-]; unique among your live sessions")
    g.add_argument(
        "--type", choices=["interactive", "batch"], help="session type (default: interactive)"
    )
    g.add_argument("-c", "--cpu", metavar="N", help="CPU cores per kernel (slot cpu)")
    g.add_argument("-m", "--mem", metavar="SIZE", help="memory per kernel, e.g. 512m, 1g, 1.5g")
    g.add_argument("--gpu", metavar="N", help="whole CUDA devices (slot cuda.device)")
    g.add_argument("--fgpu", metavar="X", help="fractional CUDA shares (slot cuda.shares)")
    g.add_argument(
        "--slot", action="append", default=[], metavar="SLOT=VALUE", help="any slot (repeatable)"
    )
    g.add_argument(
        "-e",
        "--env",
        action="append",
        default=[],
        metavar="KEY=VALUE",
        help="environment variable (repeatable)",
    )
    g.add_argument(
        "-v",
        "--mount",
        action="append",
        default=[],
        metavar="FOLDER[:PATH][:ro|rw|wd]",
        help="mount a vfolder (name or id) at /home/work/FOLDER or PATH (repeatable)",
    )
    g.add_argument("--startup-command", metavar="CMD", help="batch: the command line to run")
    g.add_argument("--bootstrap-script", metavar="FILE", help="script run once before startup")
    g.add_argument("--batch-timeout", metavar="DURATION", help="batch: limit, e.g. 30s, 5m, 1h")
    g.add_argument("--scaling-group", metavar="NAME", help="default: your default group")
    g.add_argument("--project", metavar="PROJECT", help="project id or name to charge")
    g.add_argument("--priority", type=int, metavar="N", help="0-100, higher first (default 10)")
    g.add_argument("--tag", help="free-form label, at most 64 characters")
    g.add_argument("--request-id", metavar="UUID", help="makes retries of this create idempotent")
    g.add_argument(
        "--max-wait", metavar="DURATION", help="stop waiting for RUNNING after this long"
    )


def _duration_seconds(text: str | None, flag: str) -> float | None:
    if text is None:
        return None
    try:
        return parse_duration(text).total_seconds()
    except ValueError as exc:
        raise UsageError(f"{flag}: {exc}") from exc


def _slots(args: argparse.Namespace) -> dict[str, str]:
    slots: dict[str, str] = {}
    for item in args.slot:
        key, sep, value = item.partition("=")
        if not sep or not key.strip():
            raise UsageError(f"--slot expects SLOT=VALUE, got {item!r}")
        slots[key.strip()] = slot_value(value.strip())
    if args.cpu is not None:
        slots["cpu"] = slot_value(args.cpu, "--cpu")
    if args.mem is not None:
        try:
            slots["mem"] = str(parse_size(args.mem))
        except ValueError as exc:
            raise UsageError(f"--mem: {exc}") from exc
    if args.gpu is not None:
        slots["cuda.device"] = slot_value(args.gpu, "--gpu")
    if args.fgpu is not None:
        slots["cuda.shares"] = slot_value(args.fgpu, "--fgpu")
    return slots


def mount_request(spec: str) -> session_pb2.SessionMountRequest:
    """``FOLDER``, ``FOLDER:PATH``, ``FOLDER:ro`` or ``FOLDER:PATH:rw``; FOLDER is a
    name or an id, PATH absolute or relative to /home/work."""
    parts = spec.split(":")
    permission = PERMISSIONS.get(parts[-1]) if len(parts) > 1 else None
    if permission is not None:
        parts = parts[:-1]
    if not parts[0] or len(parts) > 2:
        raise UsageError(f"--mount expects FOLDER[:PATH][:ro|rw|wd], got {spec!r}")
    request = session_pb2.SessionMountRequest(
        permission=permission or storage_pb2.MOUNT_PERMISSION_UNSPECIFIED,
        mount_path=parts[1] if len(parts) == 2 else "",
    )
    if UUID.match(parts[0]):
        request.vfolder_id = parts[0]
    else:
        request.vfolder_name = parts[0]
    return request


def build_create_request(
    client: Client, args: argparse.Namespace
) -> session_pb2.CreateSessionRequest:
    """The CreateSessionRequest the options describe (always enqueue_only: we wait here)."""
    request = session_pb2.CreateSessionRequest(
        image=args.image,
        name=args.name or "",
        environ=key_value_map(args.env, "--env"),
        startup_command=args.startup_command or "",
        scaling_group=args.scaling_group or "",
        tag=args.tag or "",
        request_id=args.request_id or "",
        enqueue_only=True,
    )
    request.resource_slots.slots.update(_slots(args))
    request.mounts.extend(mount_request(spec) for spec in args.mount)
    if args.type == "batch":
        if not args.startup_command:
            raise UsageError("--type batch needs --startup-command")
        request.type = common_session_pb2.SESSION_TYPE_BATCH
    elif args.type == "interactive":
        request.type = common_session_pb2.SESSION_TYPE_INTERACTIVE
    if args.bootstrap_script:
        with open(args.bootstrap_script, encoding="utf-8") as f:
            request.bootstrap_script = f.read(BOOTSTRAP_LIMIT + 1)
        if len(request.bootstrap_script.encode()) > BOOTSTRAP_LIMIT:
            raise UsageError(f"--bootstrap-script: {args.bootstrap_script} is over 64 KiB")
    batch_timeout = _duration_seconds(args.batch_timeout, "--batch-timeout")
    if batch_timeout is not None:
        request.batch_timeout.FromNanoseconds(int(batch_timeout * 1e9))
    if args.priority is not None:
        request.priority = args.priority
    if args.project:
        request.project_id = project_id(client, args.project)
    return request


@dataclass
class Created:
    session: session_pb2.Session
    timed_out: bool = False

    def failure(self) -> str | None:
        """Why the session will not run, or None."""
        s = self.session
        if s.status not in TERMINAL:
            return None
        ok = s.type == common_session_pb2.SESSION_TYPE_BATCH and (
            s.result == common_session_pb2.SESSION_RESULT_SUCCESS
        )
        if ok:
            return None
        status = transition_text(s.status, s.status_reason, s.status_message)
        return f"session {s.name} ended {status}"


def max_wait_seconds(args: argparse.Namespace) -> float | None:
    return _duration_seconds(args.max_wait, "--max-wait")


def enqueue(ctx: Context, args: argparse.Namespace) -> session_pb2.Session:
    """CreateSession with the options; returns the queued session."""
    client = ctx.client()
    return client.sessions.create_session(build_create_request(client, args)).session


def wait_for_start(ctx: Context, session: session_pb2.Session, max_wait: float | None) -> Created:
    """Progress on stderr until RUNNING, a terminal status or ``max_wait``; then re-read it."""
    outcome = follow_startup(
        ctx.endpoint, ctx.credentials(), session, max_wait=max_wait, note=ctx.note
    )
    current = ctx.client().sessions.get_session(session_id=session.id).session
    return Created(current, outcome.timed_out)


def print_session(ctx: Context, session: session_pb2.Session) -> None:
    if ctx.json:
        ctx.print(json.dumps(to_dict(session), indent=2))
        return
    ctx.print(f"id      {session.id}")
    ctx.print(f"name    {session.name}")
    ctx.print(f"status  {status_name(session.status)}")


def create(args: argparse.Namespace, ctx: Context) -> int:
    max_wait = max_wait_seconds(args)
    session = enqueue(ctx, args)
    if args.enqueue_only:
        print_session(ctx, session)
        return 0
    try:
        created = wait_for_start(ctx, session, max_wait)
    except KeyboardInterrupt:
        ctx.note(f"session {session.name} ({session.id}) was left as it is")
        raise
    print_session(ctx, created.session)
    if created.timed_out:
        ctx.note(
            f"still {status_name(created.session.status)} after --max-wait {args.max_wait}; "
            "the session was left as it is"
        )
    failure = created.failure()
    if failure is not None:
        ctx.note(f"error: {failure}")
        return 1
    return 0


def register_create(cmds: Any, common: argparse.ArgumentParser) -> None:
    p = cmds.add_parser(
        "create",
        aliases=["start"],
        help="create a session and wait until it runs",
        parents=[common],
        description=(
            "Create a compute session. Unless --enqueue-only, wait until it is RUNNING "
            "(or ends, or --max-wait passes), printing each status change on stderr; "
            "then print its id, name and status. Exit 1 if it ends without running."
        ),
    )
    add_create_arguments(p)
    p.add_argument("--enqueue-only", action="store_true", help="return right after queueing")
    p.set_defaults(func=create)
