"""``bai admin project ls|info|create|update|rm`` and ``project members ls|add|rm``.

Upstream calls projects "groups"; ``bai admin group`` works too. A project is
named by its UUID or by its name (with ``--domain`` when names repeat).
"""

from __future__ import annotations

import argparse
from collections.abc import Iterable
from typing import Any

from google.protobuf.message import Message

from bai.api.manager.v1 import project_pb2
from bai.cli.admin._common import (
    Crud,
    add_paging,
    leaf,
    project_id,
    register_crud,
    subcommands,
    take,
    user_id,
)
from bai.cli.context import Context
from bai.cli.fields import Opt
from bai.cli.output import print_done, print_list

COLUMNS = [
    ("ID", "id"),
    ("NAME", "name"),
    ("DOMAIN", "domain_name"),
    ("TYPE", "type"),
    ("ACTIVE", "is_active"),
    ("POLICY", "resource_policy"),
    ("CREATED", "created_at"),
]
MEMBER_COLUMNS = [
    ("USER ID", "user_id"),
    ("USERNAME", "username"),
    ("EMAIL", "email"),
    ("ROLE", "role"),
]

OPTS = [
    Opt("--name", "name", "str", "new name, unique in the domain", update_only=True),
    Opt("--description", "description", "str", "free text, at most 1024 characters"),
    Opt("--active", "is_active", "bool", "allow or refuse new sessions", update_only=True),
    Opt(
        "--type",
        "type",
        "enum",
        "project type (default: general)",
        enum=project_pb2.ProjectType.DESCRIPTOR,
        create_only=True,
    ),
    Opt(
        "--resource-policy",
        "resource_policy",
        "str",
        'project resource policy (default: "default")',
    ),
    Opt(
        "--slot",
        "total_resource_slots",
        "slots",
        "limit for all sessions of the project, e.g. cpu=16 (repeatable)",
    ),
    Opt(
        "--vfolder-host",
        "allowed_vfolder_hosts",
        "hosts",
        "storage host and its permissions, e.g. local=create-vfolder,mount-in-session",
    ),
]


def _domain_arg(p: argparse.ArgumentParser, required: bool = False) -> None:
    help_text = "the project's domain" if required else "domain, to find a project by name"
    p.add_argument("--domain", required=required, help=help_text)


def _id(ctx: Context, args: argparse.Namespace) -> str:
    return project_id(ctx.client(), args.key, getattr(args, "domain", None))


def _list(ctx: Context, args: argparse.Namespace) -> Iterable[Message]:
    return ctx.client().projects.iter_projects(page_size=args.page_size, domain_name=args.domain)


def _get(ctx: Context, args: argparse.Namespace) -> Message:
    return ctx.client().projects.get_project(id=_id(ctx, args)).project


def _create(ctx: Context, args: argparse.Namespace, message: Message) -> Message:
    assert isinstance(message, project_pb2.Project)
    message.name = args.key
    message.domain_name = args.domain
    return ctx.client().projects.create_project(project=message).project


def _update(ctx: Context, args: argparse.Namespace, message: Message, paths: list[str]) -> Message:
    assert isinstance(message, project_pb2.Project)
    message.id = _id(ctx, args)
    return ctx.client().projects.update_project(project=message, update_mask=paths).project


def _delete(ctx: Context, args: argparse.Namespace) -> Message:
    return ctx.client().projects.delete_project(id=_id(ctx, args))


CRUD = Crud(
    noun="project",
    key="PROJECT",
    key_help="project id, or name (with --domain when names repeat)",
    create_key="NAME",
    columns=COLUMNS,
    opts=OPTS,
    message=project_pb2.Project,
    list_items=_list,
    get=_get,
    create=_create,
    update=_update,
    delete=_delete,
    list_filters=lambda p: p.add_argument("--domain", help="only projects of this domain"),
    create_args=lambda p: _domain_arg(p, required=True),
)


def members_ls(args: argparse.Namespace, ctx: Context) -> int:
    client = ctx.client()
    pid = project_id(client, args.key, args.domain)
    members = client.projects.iter_project_members(project_id=pid, page_size=args.page_size)
    print_list(ctx, take(members, args), MEMBER_COLUMNS)
    return 0


def members_add(args: argparse.Namespace, ctx: Context) -> int:
    client = ctx.client()
    pid = project_id(client, args.key, args.domain)
    users = [user_id(client, u) for u in args.users]
    response = client.projects.add_project_members(project_id=pid, user_ids=users)
    print_done(ctx, f"added {len(users)} member(s) to project {args.key}", response)
    return 0


def members_rm(args: argparse.Namespace, ctx: Context) -> int:
    client = ctx.client()
    pid = project_id(client, args.key, args.domain)
    users = [user_id(client, u) for u in args.users]
    response = client.projects.remove_project_members(project_id=pid, user_ids=users)
    print_done(ctx, f"removed {len(users)} member(s) from project {args.key}", response)
    return 0


def register(sub: Any, common: argparse.ArgumentParser) -> None:
    cmds = subcommands(sub, "project", "projects (upstream: groups) in a domain", aliases=["group"])
    register_crud(cmds, common, CRUD)
    for name in ("info", "update", "rm"):
        _domain_arg(cmds.choices[name])
    members = cmds.add_parser(
        "members",
        help="list, add and remove project members",
        description="List, add and remove project members.",
    )
    mcmds = members.add_subparsers(dest="members_command", metavar="COMMAND", required=True)
    p = leaf(mcmds, "ls", "list the members of a project", members_ls, common, aliases=["list"])
    p.add_argument("key", metavar="PROJECT", help="project id or name")
    add_paging(p)
    for name, func, verb in (
        ("add", members_add, "add users to"),
        ("rm", members_rm, "remove users from"),
    ):
        p = leaf(
            mcmds,
            name,
            f"{verb} a project",
            func,
            common,
            aliases=["remove"] if name == "rm" else [],
        )
        p.add_argument("key", metavar="PROJECT", help="project id or name")
        p.add_argument("users", nargs="+", metavar="USER", help="user id, username or email")
    for p in (mcmds.choices["ls"], mcmds.choices["add"], mcmds.choices["rm"]):
        _domain_arg(p)
