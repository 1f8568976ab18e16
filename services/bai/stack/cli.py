"""``bai stack up|down|status|reset`` (also ``python -m bai.stack``)."""

from __future__ import annotations

import argparse
import importlib
import os
import sys
from collections.abc import Iterable, Sequence
from pathlib import Path

from bai.stack.config import STATE_DIR_ENV, StackConfig, default_state_dir
from bai.stack.errors import StackError
from bai.stack.spec import component_names
from bai.stack.stack import ComponentStatus, Stack

INFRASTRUCTURE = ("postgres", "redis", "etcd", "prometheus")

#: Comma-separated modules imported before running (they call register_component).
PLUGINS_ENV = "BAI_STACK_PLUGINS"
#: The platform itself (Envoy and the bai services) is always registered.
DEFAULT_PLUGIN = "bai.stack.platform"


def load_plugins(modules: Iterable[str]) -> None:
    """Import modules that register extra components (e.g. Envoy)."""
    for name in modules:
        if name.strip():
            importlib.import_module(name.strip())


def _ports(values: Sequence[str]) -> dict[str, int]:
    ports: dict[str, int] = {}
    for value in values:
        name, sep, num = value.partition("=")
        if not sep or not num.isdigit():
            raise argparse.ArgumentTypeError(f"--port wants NAME=NUMBER, got {value!r}")
        ports[name.strip()] = int(num)
    return ports


def build_parser(prog: str = "bai stack") -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog=prog,
        description="Run the whole bai system locally: PostgreSQL, Redis, etcd and "
        "Prometheus, then the manager, storage proxy, agent, coordinator and the Envoy "
        "gateway, each as a daemon with its data and log under the state dir.",
    )
    parser.add_argument(
        "--state-dir",
        help=f"where data, pid files and logs live (default: ${STATE_DIR_ENV} or "
        f"{default_state_dir()})",
    )
    parser.add_argument(
        "--only", help="comma-separated components (default: all); e.g. postgres,redis"
    )
    parser.add_argument(
        "--port", action="append", default=[], metavar="NAME=NUMBER",
        help="override a port, e.g. --port redis=18111 (remembered in the state dir)",
    )  # fmt: skip
    parser.add_argument(
        "--plugin", action="append", default=[], metavar="MODULE",
        help=f"import MODULE to register extra components (also ${PLUGINS_ENV})",
    )  # fmt: skip
    parser.add_argument(
        "--no-install", action="store_true", help="do not apt-get install missing packages"
    )
    sub = parser.add_subparsers(dest="command", required=True)
    sub.add_parser("up", help="start what is not running; wait until healthy")
    sub.add_parser("down", help="stop the components (SIGTERM, then wait)")
    sub.add_parser("status", help="show component, pid, port, healthy")
    sub.add_parser("reset", help="down, then delete the state dir")
    return parser


def _table(rows: list[ComponentStatus]) -> str:
    lines = [("COMPONENT", "PID", "PORT", "HEALTHY")]
    for r in rows:
        lines.append((r.name, str(r.pid or "-"), str(r.port or "-"), "yes" if r.healthy else "no"))
    widths = [max(len(row[i]) for row in lines) for i in range(4)]
    return "\n".join(
        "  ".join(cell.ljust(w) for cell, w in zip(row, widths, strict=True)).rstrip()
        for row in lines
    )


def main(argv: list[str] | None = None, prog: str = "bai stack") -> int:
    args = build_parser(prog).parse_args(argv)
    try:
        load_plugins([DEFAULT_PLUGIN, *os.environ.get(PLUGINS_ENV, "").split(","), *args.plugin])
        ports = _ports(args.port)
        config = StackConfig.load(Path(args.state_dir) if args.state_dir else None, ports)
        only = [n.strip() for n in args.only.split(",") if n.strip()] if args.only else None
        if args.command == "up" and only is None:
            # Infrastructure first: the bai services need it to start.
            waves = [
                list(INFRASTRUCTURE),
                [n for n in component_names(only_default=True) if n not in INFRASTRUCTURE],
            ]
            code = 0
            for wave in waves:
                code = code or _run("up", Stack(config, wave, install=not args.no_install))
            return code
        stack = Stack(config, only, install=not args.no_install)
        return _run(args.command, stack)
    except (StackError, argparse.ArgumentTypeError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        return 130


def _run(command: str, stack: Stack) -> int:
    if command == "up":
        for r in stack.up():
            what = "started" if r.started else "already running"
            print(f"{r.name:<12} {what:<16} pid {r.pid:<8} port {r.port or '-':<6} "
                  f"{r.seconds:.2f}s")  # fmt: skip
        return 0
    if command == "down":
        stopped = stack.down()
        print("stopped: " + (", ".join(stopped) if stopped else "nothing was running"))
        return 0
    if command == "status":
        rows = stack.status()
        print(_table(rows))
        return 0 if rows and all(r.healthy for r in rows) else 3
    if command == "reset":
        stack.reset()
        print(f"removed {stack.config.state_dir}")
        return 0
    raise StackError(f"unknown command {command!r}; known: up, down, status, reset")
