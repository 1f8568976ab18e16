"""``bai admin keypair ls|info|create|update|rm``. ``create`` prints the secret key once."""

from __future__ import annotations

import argparse
from collections.abc import Iterable
from typing import Any

from google.protobuf.message import Message

from bai.api.manager.v1 import keypair_pb2
from bai.cli.admin._common import Crud, register_crud, subcommands, user_id
from bai.cli.context import Context
from bai.cli.fields import Opt

COLUMNS = [
    ("ACCESS KEY", "access_key"),
    ("USER ID", "user_id"),
    ("ACTIVE", "is_active"),
    ("ADMIN", "is_admin"),
    ("POLICY", "resource_policy"),
    ("RATE LIMIT", "rate_limit"),
    ("QUERIES", "num_queries"),
    ("LAST USED", "last_used_at"),
]

OPTS = [
    Opt("--active", "is_active", "bool", "enable or disable the keypair", update_only=True),
    Opt("--admin", "is_admin", "bool", "legacy admin flag (owner must be admin or superadmin)"),
    Opt(
        "--resource-policy",
        "resource_policy",
        "str",
        'keypair resource policy (default: "default")',
    ),
    Opt("--rate-limit", "rate_limit", "int", "requests per 15 minutes (default: 30000)"),
]


def _list(ctx: Context, args: argparse.Namespace) -> Iterable[Message]:
    client = ctx.client()
    owner = user_id(client, args.user) if args.user else None
    return client.keypairs.iter_keypairs(
        page_size=args.page_size, user_id=owner, is_active=args.active
    )


def _get(ctx: Context, args: argparse.Namespace) -> Message:
    return ctx.client().keypairs.get_keypair(access_key=args.key).keypair


def _create(ctx: Context, args: argparse.Namespace, message: Message) -> Message:
    assert isinstance(message, keypair_pb2.Keypair)
    client = ctx.client()
    response = client.keypairs.create_keypair(
        user_id=user_id(client, args.key),
        is_admin=message.is_admin,
        resource_policy=message.resource_policy,
        rate_limit=message.rate_limit,
    )
    ctx.note("the secret key is shown only now: store it")
    return response


def _update(ctx: Context, args: argparse.Namespace, message: Message, paths: list[str]) -> Message:
    assert isinstance(message, keypair_pb2.Keypair)
    message.access_key = args.key
    return ctx.client().keypairs.update_keypair(keypair=message, update_mask=paths).keypair


def _delete(ctx: Context, args: argparse.Namespace) -> Message:
    return ctx.client().keypairs.delete_keypair(access_key=args.key)


def _filters(p: argparse.ArgumentParser) -> None:
    p.add_argument("--user", help="only keypairs of this user (id, username or email)")
    p.add_argument(
        "--active",
        action=argparse.BooleanOptionalAction,
        default=None,
        help="only active (--active) or inactive (--no-active) keypairs",
    )


CRUD = Crud(
    noun="keypair",
    key="ACCESS_KEY",
    create_key="USER",
    columns=COLUMNS,
    opts=OPTS,
    message=keypair_pb2.Keypair,
    list_items=_list,
    get=_get,
    create=_create,
    update=_update,
    delete=_delete,
    list_filters=_filters,
)


def register(sub: Any, common: argparse.ArgumentParser) -> None:
    cmds = subcommands(sub, "keypair", "API keypairs (access key + secret key) of users")
    register_crud(cmds, common, CRUD)
