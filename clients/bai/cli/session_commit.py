"""``bai session commit``: save a running session's main container as your own image.

The manager commits in the background (the container is paused meanwhile);
the command follows the task and prints the new image's reference, which
`bai session create` and `bai run` then take like any other image.
"""

from __future__ import annotations

import argparse
import json
from typing import Any

from bai.cli.admin._common import leaf
from bai.cli.context import Context
from bai.cli.output import to_dict
from bai.cli.session_cmd import session_id
from bai.cli.tasks import finish_task


def commit(args: argparse.Namespace, ctx: Context) -> int:
    client = ctx.client()
    sid = session_id(client, args.session)
    reply = client.sessions.commit_session(
        session_id=sid,
        image_name=args.image_name,
        image_tag=args.tag or None,
        request_id=args.request_id or None,
    )
    if args.no_wait:
        if ctx.json:
            ctx.print(json.dumps(to_dict(reply), indent=2))
        else:
            ctx.print(f"committing session {args.session}; task {reply.task_id}")
        return 0
    task = finish_task(ctx, client, reply.task_id, f"committing {args.session}", "COMMIT_FAILED")
    if ctx.json:
        ctx.print(json.dumps(dict(task.result), indent=2))
    else:
        ctx.print(f"committed session {args.session} as {task.result['image']}")
    return 0


def register(cmds: Any, common: argparse.ArgumentParser) -> None:
    p = leaf(
        cmds,
        "commit",
        "save a running session's main container as your own image",
        commit,
        common,
        description=(
            "Commit the main container of a RUNNING session (Docker runtime) to a new image "
            "owned by you, named bai.local/customized/<your id>/IMAGE_NAME:TAG. Files under "
            "mounted folders and /home/work are not part of it. Your user resource policy's "
            "max_customized_image_count limits how many you keep."
        ),
    )
    p.add_argument("session", metavar="ID|NAME", help="session id, or name of a live session")
    p.add_argument("image_name", metavar="IMAGE_NAME", help="1-64 characters of a-z 0-9 . _ -")
    p.add_argument("--tag", default="", help="image tag (default: the UTC time, 20261127-093000)")
    p.add_argument("--request-id", default="", help="a UUID that makes retries return one task")
    p.add_argument("--no-wait", action="store_true", help="print the task id and return")
