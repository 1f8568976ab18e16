"""Shared pieces of the admin commands: the ls/info/create/update/rm pattern and lookups.

A resource module describes itself with a :class:`Crud` (columns, settable
fields, and small functions that call the SDK); :func:`register_crud` adds the
five usual subcommands. Upstream's names are accepted as aliases (list, add,
delete).
"""

from __future__ import annotations

import argparse
import itertools
import re
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from typing import Any

from google.protobuf.message import Message

from bai.cli.context import Context, UsageError
from bai.cli.fields import Opt, add_options, apply_options
from bai.cli.output import print_done, print_list, print_object
from bai.client import Client, errors

UUID = re.compile(r"^[0-9a-f]{8}-?([0-9a-f]{4}-?){3}[0-9a-f]{12}$", re.IGNORECASE)

Columns = Sequence[tuple[str, str]]


def subcommands(sub: Any, name: str, help_text: str, aliases: Sequence[str] = ()) -> Any:
    """A command group (``bai admin domain``) whose subcommand is required."""
    group = sub.add_parser(name, aliases=list(aliases), help=help_text, description=help_text)
    return group.add_subparsers(dest=f"{name}_command", metavar="COMMAND", required=True)


def leaf(
    cmds: Any,
    name: str,
    help_text: str,
    func: Callable[[argparse.Namespace, Context], int],
    common: argparse.ArgumentParser,
    *,
    aliases: Sequence[str] = (),
    description: str | None = None,
) -> argparse.ArgumentParser:
    p: argparse.ArgumentParser = cmds.add_parser(
        name,
        aliases=list(aliases),
        help=help_text,
        description=description or help_text[:1].upper() + help_text[1:] + ".",
        parents=[common],
    )
    p.set_defaults(func=func)
    return p


def add_paging(p: argparse.ArgumentParser) -> None:
    p.add_argument("--limit", type=int, metavar="N", help="show at most N items (default: all)")
    p.add_argument(
        "--page-size",
        type=int,
        default=0,
        metavar="N",
        help="items fetched per call (default: the server's, 100)",
    )


def take(items: Iterable[Message], args: argparse.Namespace) -> list[Message]:
    limit = getattr(args, "limit", None)
    return list(itertools.islice(items, limit)) if limit is not None else list(items)


@dataclass
class Crud:
    """One resource: how to list, read, create, update and delete it."""

    noun: str
    key: str  # metavar of the positional that names an existing item
    columns: Columns
    opts: Sequence[Opt]
    message: type[Message]
    list_items: Callable[[Context, argparse.Namespace], Iterable[Message]]
    get: Callable[[Context, argparse.Namespace], Message]
    create: Callable[[Context, argparse.Namespace, Message], Message]
    update: Callable[[Context, argparse.Namespace, Message, list[str]], Message]
    delete: Callable[[Context, argparse.Namespace], Message]
    create_key: str | None = None  # metavar of create's positional; None: same as key
    key_help: str | None = None
    # Extra arguments of ls, create and rm.
    list_filters: Callable[[argparse.ArgumentParser], object] | None = None
    create_args: Callable[[argparse.ArgumentParser], object] | None = None
    delete_args: Callable[[argparse.ArgumentParser], object] | None = None
    # Whether update has something to do besides the field options (a password reset).
    has_changes: Callable[[argparse.Namespace], bool] = field(default=lambda _: False)


def register_crud(cmds: Any, common: argparse.ArgumentParser, crud: Crud) -> None:
    n = crud.noun
    p = leaf(cmds, "ls", f"list {n}s", lambda a, c: _ls(crud, a, c), common, aliases=["list"])
    add_paging(p)
    if crud.list_filters:
        crud.list_filters(p)
    which = crud.key_help or f"the {n}'s {crud.key.lower().replace('_', ' ')}"
    p = leaf(cmds, "info", f"show one {n}", lambda a, c: _info(crud, a, c), common)
    p.add_argument("key", metavar=crud.key, help=which)
    p = leaf(
        cmds, "create", f"create a {n}", lambda a, c: _create(crud, a, c), common, aliases=["add"]
    )
    create_key = crud.create_key or crud.key
    p.add_argument("key", metavar=create_key, help=create_key.lower().replace("_", " "))
    if crud.create_args:
        crud.create_args(p)
    add_options(p, crud.opts, update=False)
    p = leaf(
        cmds,
        "update",
        f"change fields of a {n} (only the options given)",
        lambda a, c: _update(crud, a, c),
        common,
    )
    p.add_argument("key", metavar=crud.key, help=which)
    add_options(p, crud.opts, update=True)
    p = leaf(cmds, "rm", f"delete a {n}", lambda a, c: _rm(crud, a, c), common, aliases=["delete"])
    p.add_argument("key", metavar=crud.key, help=which)
    if crud.delete_args:
        crud.delete_args(p)


def _ls(crud: Crud, args: argparse.Namespace, ctx: Context) -> int:
    print_list(ctx, take(crud.list_items(ctx, args), args), crud.columns)
    return 0


def _info(crud: Crud, args: argparse.Namespace, ctx: Context) -> int:
    print_object(ctx, crud.get(ctx, args))
    return 0


def _create(crud: Crud, args: argparse.Namespace, ctx: Context) -> int:
    message = crud.message()
    apply_options(message, args, crud.opts)
    result = crud.create(ctx, args, message)
    print_object(ctx, result)
    return 0


def _update(crud: Crud, args: argparse.Namespace, ctx: Context) -> int:
    message = crud.message()
    paths = apply_options(message, args, crud.opts)
    if not paths and not crud.has_changes(args):
        raise UsageError("nothing to update: give at least one field option (see --help)")
    print_object(ctx, crud.update(ctx, args, message, paths))
    return 0


def _rm(crud: Crud, args: argparse.Namespace, ctx: Context) -> int:
    response = crud.delete(ctx, args)
    print_done(ctx, f"deleted {crud.noun} {args.key}", response)
    return 0


def project_id(client: Client, ref: str, domain: str | None = None) -> str:
    """A project UUID, or the id of the one project named ``ref`` (in ``domain``)."""
    if UUID.match(ref):
        return ref
    found = [p for p in client.projects.iter_projects(domain_name=domain) if p.name == ref]
    if not found:
        raise errors.NotFound(f"project {ref!r} not found", reason="NOT_FOUND")
    if len(found) > 1:
        domains = ", ".join(p.domain_name for p in found)
        raise UsageError(f"project name {ref!r} is in several domains ({domains}): give --domain")
    return found[0].id


def user_id(client: Client, ref: str) -> str:
    """A user UUID, or the id of the user whose username or email is ``ref``."""
    if UUID.match(ref):
        return ref
    lowered = ref.lower()
    for user in client.users.iter_users():
        if user.username == ref or user.email.lower() == lowered:
            return user.id
    raise errors.NotFound(f"user {ref!r} not found", reason="NOT_FOUND")
