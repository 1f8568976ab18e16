"""``bai admin audit ls``: the audit log, newest first."""

from __future__ import annotations

import argparse
from datetime import UTC, datetime
from typing import Any

from bai.cli.admin._common import add_paging, leaf, subcommands, take, user_id
from bai.cli.context import Context, UsageError
from bai.cli.output import print_list

COLUMNS = [
    ("TIME", "created_at"),
    ("ACTOR", "actor"),
    ("METHOD", "method"),
    ("OPERATION", "operation"),
    ("ENTITY", "entity_type"),
    ("ENTITY ID", "entity_id"),
    ("STATUS", "status"),
    ("REASON", "reason"),
]


def instant(text: str) -> datetime:
    """ISO 8601 date or date-time; without a zone it is UTC."""
    try:
        parsed = datetime.fromisoformat(text.replace("Z", "+00:00"))
    except ValueError as exc:
        raise UsageError(f"not an ISO 8601 date/time: {text!r}") from exc
    return parsed if parsed.tzinfo else parsed.replace(tzinfo=UTC)


def ls(args: argparse.Namespace, ctx: Context) -> int:
    client = ctx.client()
    entries = client.audit_logs.iter_audit_logs(
        page_size=args.page_size,
        domain_name=args.domain,
        user_id=user_id(client, args.user) if args.user else None,
        entity_type=args.entity_type,
        since=instant(args.since) if args.since else None,
        until=instant(args.until) if args.until else None,
    )
    print_list(ctx, take(entries, args), COLUMNS)
    return 0


def register(sub: Any, common: argparse.ArgumentParser) -> None:
    cmds = subcommands(sub, "audit", "the audit log of mutating calls")
    p = leaf(cmds, "ls", "list audit log entries, newest first", ls, common, aliases=["list"])
    add_paging(p)
    p.add_argument("--domain", help="only entries of this domain")
    p.add_argument("--user", help="only calls by this user (id, username or email)")
    p.add_argument("--entity-type", help="only this kind of entity (domain, user, keypair, ...)")
    p.add_argument("--since", help="only entries at or after this ISO 8601 time")
    p.add_argument("--until", help="only entries before this ISO 8601 time")
