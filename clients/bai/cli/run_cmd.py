"""``bai run IMAGE CODE``: a session for one run - create, wait, execute, destroy."""

from __future__ import annotations

import argparse
from typing import Any

from bai.cli.context import Context
from bai.cli.errors import UNAVAILABLE, describe
from bai.cli.exec_cmd import add_run_options, exec_timeout_arg, run_code, run_parser
from bai.cli.session_create import (
    add_create_arguments,
    enqueue,
    max_wait_seconds,
    wait_for_start,
)
from bai.client import errors


def run(args: argparse.Namespace, ctx: Context) -> int:
    exec_timeout = exec_timeout_arg(args)
    max_wait = max_wait_seconds(args)
    session = enqueue(ctx, args)
    try:
        created = wait_for_start(ctx, session, max_wait)
        failure = created.failure()
        if failure is not None:
            ctx.note(f"error: {failure}")
            return 1
        if created.timed_out:
            ctx.note(f"error: session {session.name} did not start within --max-wait")
            return UNAVAILABLE
        mode = args.mode or "query"
        return run_code(ctx, ctx.client(), session.id, args.code, mode, exec_timeout)
    finally:
        if args.keep:
            ctx.note(f"kept session {session.name} ({session.id})")
        else:
            _destroy(ctx, session.id, session.name)


def _destroy(ctx: Context, session_id: str, name: str) -> None:
    try:
        ctx.client().sessions.destroy_session(session_id=session_id)
    except errors.BaiError as exc:
        ctx.note(f"error: could not destroy session {name} ({session_id}): {describe(exc)[0]}")
    else:
        ctx.note(f"destroyed session {name}")


def register(sub: Any, name: str, help_text: str, common: argparse.ArgumentParser) -> None:
    p = run_parser(
        sub,
        name,
        help_text,
        "Create a session from IMAGE (printing its progress on stderr), run CODE in it "
        "with the terminal attached, then destroy it (unless --keep). Ctrl-C interrupts "
        "the run; pressed again, or while the session starts, it destroys the session. "
        "The exit code is the run's (124: timed out, 130: interrupted).",
    )
    add_create_arguments(p)
    p.add_argument(
        "code",
        metavar="CODE",
        help="code for the kernel's runtime (or, with --mode batch, a shell command line)",
    )
    add_run_options(p)
    p.add_argument("--keep", action="store_true", help="leave the session running afterwards")
    p.set_defaults(func=run)
