"""``bai admin user ls|info|create|update|rm``. Users are named by id, username or email."""

from __future__ import annotations

import argparse
import getpass
import os
import sys
from collections.abc import Iterable
from typing import Any

from google.protobuf.message import Message

from bai.api.manager.v1 import auth_pb2, user_pb2
from bai.cli.admin._common import Crud, project_id, register_crud, subcommands, user_id
from bai.cli.context import Context, UsageError
from bai.cli.fields import Opt, enum_choices

COLUMNS = [
    ("ID", "id"),
    ("USERNAME", "username"),
    ("EMAIL", "email"),
    ("DOMAIN", "domain_name"),
    ("ROLE", "role"),
    ("STATUS", "status"),
    ("POLICY", "resource_policy"),
]
ROLE = auth_pb2.UserRole.DESCRIPTOR
STATUS = user_pb2.UserStatus.DESCRIPTOR

OPTS = [
    Opt("--username", "username", "str", "new username", update_only=True),
    Opt("--email", "email", "str", "email address (required on create)"),
    Opt("--full-name", "full_name", "str", "full name"),
    Opt("--description", "description", "str", "free text"),
    Opt("--role", "role", "enum", "role (default: user)", enum=ROLE),
    Opt("--status", "status", "enum", "account status", enum=STATUS, update_only=True),
    Opt(
        "--need-password-change",
        "need_password_change",
        "bool",
        "ask the user to change the password after login",
    ),
    Opt("--resource-policy", "resource_policy", "str", 'user resource policy (default: "default")'),
    Opt(
        "--allowed-ip",
        "allowed_client_ip",
        "list",
        "address or CIDR the user may call from (repeatable; none: any)",
    ),
    Opt("--sudo", "sudo_session_enabled", "bool", "passwordless sudo in session containers"),
    Opt("--container-uid", "container_uid", "int", "UID inside session containers"),
    Opt("--container-gid", "container_main_gid", "int", "primary GID inside session containers"),
    Opt("--container-gids", "container_gids", "ints", "supplementary GIDs (comma-separated)"),
]


def _list(ctx: Context, args: argparse.Namespace) -> Iterable[Message]:
    client = ctx.client()
    pid = project_id(client, args.project, args.domain) if args.project else None
    return client.users.iter_users(
        page_size=args.page_size,
        domain_name=args.domain,
        project_id=pid,
        status=args.status,
        role=args.role,
    )


def _get(ctx: Context, args: argparse.Namespace) -> Message:
    client = ctx.client()
    return client.users.get_user(id=user_id(client, args.key)).user


def _new_password(args: argparse.Namespace) -> str:
    if args.password:
        return str(args.password)
    if os.environ.get("BAI_NEW_PASSWORD"):
        return os.environ["BAI_NEW_PASSWORD"]
    if not sys.stdin.isatty():
        raise UsageError("no password: use --password or BAI_NEW_PASSWORD")
    first = getpass.getpass("New user's password: ")
    if getpass.getpass("Again: ") != first:
        raise UsageError("the passwords differ")
    return first


def _create(ctx: Context, args: argparse.Namespace, message: Message) -> Message:
    assert isinstance(message, user_pb2.User)
    client = ctx.client()
    message.username = args.key
    message.domain_name = args.domain
    if not message.email:
        raise UsageError("--email is required")
    message.project_ids.extend(project_id(client, p, args.domain) for p in args.project or [])
    response = client.users.create_user(
        user=message, password=_new_password(args), create_keypair=args.keypair
    )
    if response.secret_key:
        ctx.note("the keypair's secret key is shown only now: store it")
        return response
    return response.user


def _update(ctx: Context, args: argparse.Namespace, message: Message, paths: list[str]) -> Message:
    assert isinstance(message, user_pb2.User)
    client = ctx.client()
    message.id = user_id(client, args.key)
    password = args.password or ""
    return client.users.update_user(user=message, update_mask=paths, password=password).user


def _delete(ctx: Context, args: argparse.Namespace) -> Message:
    client = ctx.client()
    return client.users.delete_user(id=user_id(client, args.key), purge=args.purge)


def _filters(p: argparse.ArgumentParser) -> None:
    p.add_argument("--domain", help="only users of this domain")
    p.add_argument("--project", help="only members of this project (id or name)")
    p.add_argument("--status", choices=enum_choices(STATUS), help="only this status")
    p.add_argument("--role", choices=enum_choices(ROLE), help="only this role")


def _create_args(p: argparse.ArgumentParser) -> None:
    p.add_argument("--domain", required=True, help="the user's domain")
    p.add_argument("--password", help="password (else BAI_NEW_PASSWORD, else prompted)")
    p.add_argument(
        "--project",
        action="append",
        metavar="PROJECT",
        help="initial project membership (repeatable)",
    )
    p.add_argument("--keypair", action="store_true", help="also issue a first keypair")


CRUD = Crud(
    noun="user",
    key="USER",
    key_help="user id, username or email",
    create_key="USERNAME",
    columns=COLUMNS,
    opts=OPTS,
    message=user_pb2.User,
    list_items=_list,
    get=_get,
    create=_create,
    update=_update,
    delete=_delete,
    list_filters=_filters,
    create_args=_create_args,
    has_changes=lambda args: bool(args.password),
    delete_args=lambda p: p.add_argument(
        "--purge",
        action="store_true",
        help="remove permanently (superadmin) instead of marking DELETED",
    ),
)


def register(sub: Any, common: argparse.ArgumentParser) -> None:
    cmds = subcommands(sub, "user", "users of a domain")
    register_crud(cmds, common, CRUD)
    cmds.choices["update"].add_argument("--password", help="reset the user's password")
