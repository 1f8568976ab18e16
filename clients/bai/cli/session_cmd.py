"""``bai session ...``: create, list, inspect, destroy, restart; streams and files of a session.

A session is named by its id or, for your own live sessions, by its name: the
manager's GetSession takes only ids, so names are looked up with ListSessions.
"""

from __future__ import annotations

import argparse
import json
from typing import Any, TypeAlias

from bai.api.common.v1 import session_pb2 as common_session_pb2
from bai.api.manager.v1 import session_pb2
from bai.cli.admin._common import UUID, add_paging, leaf, take
from bai.cli.context import Context, UsageError
from bai.cli.fields import enum_choices
from bai.cli.output import EMPTY, path_text, print_list, table, to_dict
from bai.cli.progress import TERMINAL, reason_name, status_name, transition_text
from bai.client import Client, errors

SessionStatus: TypeAlias = common_session_pb2.SessionStatus.ValueType
LIVE: list[SessionStatus] = [
    s for s in common_session_pb2.SessionStatus.values() if s and s not in TERMINAL
]
STATUS_CHOICES = enum_choices(common_session_pb2.SessionStatus.DESCRIPTOR)

COLUMNS = [
    ("ID", "id"),
    ("NAME", "name"),
    ("STATUS", "status"),
    ("TYPE", "type"),
    ("IMAGE", "image"),
    ("REQUESTED", "requested_slots"),
    ("CREATED", "created_at"),
]
INFO_FIELDS = (
    "type",
    "image",
    "result",
    "exit_code",
    "requested_slots",
    "occupied_slots",
    "scaling_group",
    "project_id",
    "owner_access_key",
    "agent_ids",
    "tag",
    "created_at",
    "started_at",
    "terminated_at",
)
KERNEL_COLUMNS = [
    ("KERNEL", "id"),
    ("ROLE", "cluster_role"),
    ("STATUS", "status"),
    ("AGENT", "agent_id"),
    ("EXIT", "exit_code"),
]


def session_id(client: Client, ref: str) -> str:
    """``ref`` if it is an id, else the id of your one live session named ``ref``."""
    if UUID.match(ref):
        return ref
    found = list(client.sessions.iter_sessions(name=ref, statuses=LIVE))
    if not found:
        raise errors.NotFound(f"no live session named {ref!r}", reason="NOT_FOUND")
    if len(found) > 1:
        ids = ", ".join(s.id for s in found)
        raise UsageError(f"several live sessions are named {ref!r} ({ids}): give the id")
    return found[0].id


def get_session(client: Client, ref: str) -> session_pb2.Session:
    return client.sessions.get_session(session_id=session_id(client, ref)).session


def _statuses(values: list[str]) -> list[SessionStatus]:
    names = [v.strip() for item in values for v in item.split(",") if v.strip()]
    bad = [n for n in names if n.lower() not in STATUS_CHOICES]
    if bad:
        raise UsageError(
            f"--status: unknown {', '.join(bad)} (one of: {', '.join(STATUS_CHOICES)})"
        )
    prefix = "SESSION_STATUS_"
    return [
        common_session_pb2.SessionStatus.Value(prefix + n.upper().replace("-", "_")) for n in names
    ]


def ls(args: argparse.Namespace, ctx: Context) -> int:
    if args.all and args.status:
        raise UsageError("give --status or --all, not both")
    statuses = _statuses(args.status) if args.status else ([] if args.all else LIVE)
    items = ctx.client().sessions.iter_sessions(page_size=args.page_size, statuses=statuses)
    print_list(ctx, take(items, args), COLUMNS)
    return 0


def _waiting_because(session: session_pb2.Session) -> list[str]:
    lines = []
    for d in session.scheduling_diagnostics:
        check = short_check(d.check)
        shortfalls = ", ".join(
            f"{f.slot} requested {f.requested or '?'}, available {f.available or '0'}"
            for f in d.shortfalls
        )
        detail = "; ".join(p for p in (check, shortfalls, d.agent_id) if p)
        lines.append(f"waiting because: {d.message or check}" + (f" ({detail})" if detail else ""))
    if not lines:
        lines.append("waiting because: not scheduled yet (no diagnostic)")
    return lines


def short_check(check: session_pb2.SchedulingCheck.ValueType) -> str:
    value = session_pb2.SchedulingCheck.Name(check) if check else ""
    return value.removeprefix("SCHEDULING_CHECK_").lower().replace("_", "-")


def info(args: argparse.Namespace, ctx: Context) -> int:
    s = get_session(ctx.client(), args.session)
    if ctx.json:
        ctx.print(json.dumps(to_dict(s), indent=2))
        return 0
    rows = [
        ("id", s.id),
        ("name", s.name),
        ("status", transition_text(s.status, s.status_reason, s.status_message)),
        *((field, path_text(s, field)) for field in INFO_FIELDS),
    ]
    width = max(len(key) for key, _ in rows)
    for key, value in rows:
        ctx.print(f"{key.ljust(width)}  {value}")
    if s.status == common_session_pb2.SESSION_STATUS_PENDING:
        for line in _waiting_because(s):
            ctx.print(line)
    ctx.print()
    ctx.print(
        table(
            [h for h, _ in KERNEL_COLUMNS],
            [[path_text(k, p) for _, p in KERNEL_COLUMNS] for k in s.kernels],
        )
    )
    ctx.print()
    history = [
        [
            path_text(t, "time"),
            status_name(t.status),
            reason_name(t.reason) if t.reason else EMPTY,
            t.message or EMPTY,
        ]
        for t in s.status_history
    ]
    ctx.print(table(["TIME", "STATUS", "REASON", "MESSAGE"], history))
    return 0


def rm(args: argparse.Namespace, ctx: Context) -> int:
    from bai.cli.errors import describe

    client = ctx.client()
    code, destroyed = 0, []
    for ref in args.sessions:
        try:
            sid = session_id(client, ref)
            s = client.sessions.destroy_session(
                session_id=sid, forced=args.forced, recursive=args.recursive
            ).session
        except errors.BaiError as exc:
            message, failed = describe(exc)
            ctx.note(f"error: {ref}: {message}")
            code = code or failed
            continue
        destroyed.append(s)
        if not ctx.json:
            ctx.print(f"destroyed session {s.name} ({s.id}): {status_name(s.status)}")
    if ctx.json:
        ctx.print(json.dumps([to_dict(s) for s in destroyed], indent=2))
    return code


def restart(args: argparse.Namespace, ctx: Context) -> int:
    client = ctx.client()
    s = client.sessions.restart_session(session_id=session_id(client, args.session)).session
    if ctx.json:
        ctx.print(json.dumps(to_dict(s), indent=2))
    else:
        ctx.print(f"restarted session {s.name} ({s.id}): {status_name(s.status)}")
    return 0


def rename(args: argparse.Namespace, ctx: Context) -> int:
    client = ctx.client()
    sid = session_id(client, args.session)
    s = client.sessions.rename_session(session_id=sid, new_name=args.new_name).session
    if ctx.json:
        ctx.print(json.dumps(to_dict(s), indent=2))
    else:
        ctx.print(f"renamed session {args.session} to {s.name} ({s.id})")
    return 0


def interrupt(args: argparse.Namespace, ctx: Context) -> int:
    client = ctx.client()
    sid = session_id(client, args.session)
    client.sessions.interrupt_session(session_id=sid)
    if ctx.json:
        ctx.print(json.dumps({"session_id": sid, "interrupted": True}))
    else:
        ctx.print(f"interrupted the runs of session {args.session}")
    return 0


def _session_arg(p: argparse.ArgumentParser) -> None:
    p.add_argument("session", metavar="ID|NAME", help="session id, or name of a live session")


def register(sub: Any, name: str, help_text: str, common: argparse.ArgumentParser) -> None:
    from bai.cli import exec_cmd, session_commit, session_create, session_files, session_streams

    p = sub.add_parser(
        name,
        help=help_text,
        description=(
            "Compute sessions: create them, list and inspect them, run code in them, follow "
            "their logs, events and statistics, move files in and out, commit them to "
            "images, destroy them. "
            "ID|NAME is a session id or the name of one of your live sessions."
        ),
    )
    cmds = p.add_subparsers(dest="session_command", metavar="COMMAND", required=True)
    session_create.register_create(cmds, common)
    p = leaf(
        cmds,
        "ls",
        "list sessions (live ones unless --status or --all)",
        ls,
        common,
        aliases=["list", "ps"],
    )
    p.add_argument(
        "--status",
        action="append",
        default=[],
        metavar="STATUS",
        help=f"only these statuses (repeatable or comma-separated): {', '.join(STATUS_CHOICES)}",
    )
    p.add_argument("--all", action="store_true", help="include terminated, cancelled and errored")
    add_paging(p)
    p = leaf(
        cmds,
        "info",
        "show a session: kernels, status history, why it is pending",
        info,
        common,
    )
    _session_arg(p)
    p = leaf(cmds, "rm", "destroy sessions", rm, common, aliases=["destroy", "kill"])
    p.add_argument("sessions", nargs="+", metavar="ID|NAME", help="sessions to destroy")
    p.add_argument(
        "--forced", action="store_true", help="skip graceful shutdown; clears stuck sessions"
    )
    p.add_argument("--recursive", action="store_true", help="also destroy sessions depending on it")
    p = leaf(cmds, "restart", "restart every kernel in place", restart, common)
    _session_arg(p)
    p = leaf(cmds, "rename", "give a live session a new name", rename, common)
    _session_arg(p)
    p.add_argument(
        "new_name",
        metavar="NEW_NAME",
        help="4-64 of [A-Za-z0-9._-], unique among your live sessions",
    )
    p = leaf(
        cmds,
        "interrupt",
        "interrupt the code running in a session (SIGINT); the kernel keeps its state",
        interrupt,
        common,
    )
    _session_arg(p)
    session_streams.register(cmds, common)
    session_files.register(cmds, common)
    exec_cmd.register(cmds, common)
    session_commit.register(cmds, common)
