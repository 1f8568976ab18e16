"""``bai session logs|events|stats``: following a session's streams.

They run until the server ends the stream or Ctrl-C (exit 130, quietly). With
--json every message is one line of JSON (NDJSON).
"""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Callable
from typing import Any

from google.protobuf.message import Message

from bai.api.common.v1 import execution_pb2, stats_pb2
from bai.api.manager.v1 import session_pb2
from bai.cli.admin._common import leaf
from bai.cli.context import Context, UsageError
from bai.cli.exec_cmd import write_bytes
from bai.cli.output import EMPTY, path_text, table, to_dict
from bai.cli.progress import reason_name, status_name
from bai.cli.units import format_size, parse_duration
from bai.client import watch_events
from bai.client._requests import short_enum_name

Handler = Callable[[argparse.Namespace, Context], int]


def quiet_interrupt(handler: Handler) -> Handler:
    """Ctrl-C is how one stops following: exit 130 without an error line."""

    def wrapped(args: argparse.Namespace, ctx: Context) -> int:
        try:
            return handler(args, ctx)
        except KeyboardInterrupt:
            return 130

    return wrapped


def print_ndjson(ctx: Context, message: Message) -> None:
    ctx.print(json.dumps(to_dict(message), separators=(",", ":")))
    ctx.out.flush()


def logs(args: argparse.Namespace, ctx: Context) -> int:
    from bai.cli.session_cmd import session_id

    if args.tail is not None and args.tail < 0:
        raise UsageError("--tail must be 0 or more")
    client = ctx.client()
    stream = client.sessions.stream_logs(
        session_id=session_id(client, args.session),
        kernel_id=args.kernel or "",
        tail=args.tail,
        follow=args.follow,
    )
    for response in stream:
        if ctx.json:
            print_ndjson(ctx, response.entry)
        elif response.entry.stream == execution_pb2.OUTPUT_STREAM_STDERR:
            write_bytes(sys.stderr, response.entry.data)
        else:
            write_bytes(ctx.out, response.entry.data)
    return 0


def event_line(event: session_pb2.SessionEvent) -> str:
    """``CURSOR  TIME  TYPE  SESSION  STATUS  [kernel ROLE ID STATUS]  [REASON: MESSAGE]``."""
    kind = short_enum_name(session_pb2.SessionEventType.DESCRIPTOR, event.type)
    parts = [event.cursor or EMPTY, path_text(event, "time"), kind]
    parts.append(event.session_name or event.session_id or EMPTY)
    parts.append(status_name(event.session_status) if event.session_status else EMPTY)
    if event.kernel_id:
        kernel_status = path_text(event, "kernel_status")
        parts.append(f"kernel {event.cluster_role or EMPTY} {event.kernel_id} {kernel_status}")
    detail = ": ".join(
        p for p in (reason_name(event.reason) if event.reason else "", event.message) if p
    )
    if event.HasField("exit_code"):
        detail = f"{detail} (exit {event.exit_code})".strip()
    if detail:
        parts.append(detail)
    return "  ".join(parts)


def events(args: argparse.Namespace, ctx: Context) -> int:
    from bai.cli.session_cmd import session_id

    client = ctx.client()
    sid = session_id(client, args.session) if args.session else ""
    stream = watch_events(client, sid, cursor=args.cursor or "", scope=args.scope or "unspecified")
    for event in stream:
        if ctx.json:
            print_ndjson(ctx, event)
        else:
            ctx.print(event_line(event))
            ctx.out.flush()
    return 0


def _devices(stats: stats_pb2.KernelStats) -> str:
    shown = [
        f"{d.plugin}:{d.device_id} {d.util_percent:.0f}% "
        f"{format_size(d.mem_used_bytes)}/{format_size(d.mem_total_bytes)}"
        for d in stats.devices
    ]
    return ", ".join(shown) or EMPTY


def stats_table(sample: session_pb2.WatchStatsResponse) -> str:
    rows = [
        [
            k.kernel_id,
            f"{k.cpu_util_percent:.1f}",
            f"{format_size(k.mem_used_bytes)}/{format_size(k.mem_limit_bytes)}",
            f"{format_size(k.net_rx_bytes)}/{format_size(k.net_tx_bytes)}",
            f"{format_size(k.io_read_bytes)}/{format_size(k.io_write_bytes)}",
            _devices(k),
        ]
        for k in sample.kernels
    ]
    headers = ["KERNEL", "CPU%", "MEM", "NET RX/TX", "IO R/W", "DEVICES"]
    return f"time: {path_text(sample, 'time')}\n" + table(headers, rows)


CLEAR_SCREEN = "\x1b[H\x1b[J"


def stats(args: argparse.Namespace, ctx: Context) -> int:
    from bai.cli.session_cmd import session_id

    try:
        interval = parse_duration(args.interval)
    except ValueError as exc:
        raise UsageError(f"--interval: {exc}") from exc
    client = ctx.client()
    sid = session_id(client, args.session)
    refresh = ctx.out.isatty()
    for index, sample in enumerate(client.sessions.watch_stats(session_id=sid, interval=interval)):
        if ctx.json:
            print_ndjson(ctx, sample)
            continue
        if refresh:
            ctx.out.write(CLEAR_SCREEN)
        elif index:
            ctx.print()
        ctx.print(stats_table(sample))
        ctx.out.flush()
    return 0


def register(cmds: Any, common: argparse.ArgumentParser) -> None:
    p = leaf(
        cmds,
        "logs",
        "print a kernel's container log",
        quiet_interrupt(logs),
        common,
        description="Print the container log of the session's main kernel (or --kernel): "
        "everything retained, or the last --tail entries; -f keeps following it.",
    )
    p.add_argument("session", metavar="ID|NAME", help="session id, or name of a live session")
    p.add_argument("--tail", type=int, metavar="N", help="only the last N entries")
    p.add_argument("-f", "--follow", action="store_true", help="keep printing new entries")
    p.add_argument("--kernel", metavar="KERNEL_ID", help="another kernel of the session")
    p = leaf(
        cmds,
        "events",
        "follow session lifecycle events",
        quiet_interrupt(events),
        common,
        description="Print session and kernel lifecycle events as they happen (of one "
        "session, or of all you may see), one line each, starting with the event's cursor: "
        "pass it to --cursor to resume after that event. Reconnects by itself after a "
        "dropped connection. Ends when the session ends.",
    )
    p.add_argument("session", nargs="?", metavar="ID|NAME", help="only this session")
    p.add_argument("--cursor", help="start after this event (default: from now)")
    p.add_argument("--scope", choices=["session", "kernel"], help="only session or kernel events")
    p = leaf(
        cmds,
        "stats",
        "show live resource usage",
        quiet_interrupt(stats),
        common,
        description="Show the CPU, memory, network, disk and device usage of each kernel, "
        "refreshed every --interval (a table redrawn in place on a terminal; --json: NDJSON).",
    )
    p.add_argument("session", metavar="ID|NAME", help="session id, or name of a live session")
    p.add_argument("--interval", default="5s", metavar="DURATION", help="at least 1s (default 5s)")
