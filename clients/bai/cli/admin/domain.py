"""``bai admin domain ls|info|create|update|rm``."""

from __future__ import annotations

import argparse
from collections.abc import Iterable
from typing import Any

from google.protobuf.message import Message

from bai.api.manager.v1 import domain_pb2
from bai.cli.admin._common import Crud, register_crud, subcommands
from bai.cli.context import Context
from bai.cli.fields import Opt

COLUMNS = [
    ("NAME", "name"),
    ("ACTIVE", "is_active"),
    ("TOTAL SLOTS", "total_resource_slots"),
    ("CREATED", "created_at"),
    ("DESCRIPTION", "description"),
]

OPTS = [
    Opt("--description", "description", "str", "free text, at most 1024 characters"),
    Opt("--active", "is_active", "bool", "allow or refuse new sessions", update_only=True),
    Opt(
        "--slot",
        "total_resource_slots",
        "slots",
        "limit for all sessions of the domain, e.g. cpu=64 or mem=256g (repeatable)",
    ),
    Opt(
        "--vfolder-host",
        "allowed_vfolder_hosts",
        "hosts",
        "storage host and its permissions, e.g. local=create-vfolder,mount-in-session",
    ),
    Opt(
        "--docker-registry",
        "allowed_docker_registries",
        "list",
        "container registry sessions may pull from (repeatable)",
    ),
]


def _list(ctx: Context, args: argparse.Namespace) -> Iterable[Message]:
    return ctx.client().domains.iter_domains(page_size=args.page_size)


def _get(ctx: Context, args: argparse.Namespace) -> Message:
    return ctx.client().domains.get_domain(name=args.key).domain


def _create(ctx: Context, args: argparse.Namespace, message: Message) -> Message:
    assert isinstance(message, domain_pb2.Domain)
    message.name = args.key
    return ctx.client().domains.create_domain(domain=message).domain


def _update(ctx: Context, args: argparse.Namespace, message: Message, paths: list[str]) -> Message:
    assert isinstance(message, domain_pb2.Domain)
    message.name = args.key
    return ctx.client().domains.update_domain(domain=message, update_mask=paths).domain


def _delete(ctx: Context, args: argparse.Namespace) -> Message:
    return ctx.client().domains.delete_domain(name=args.key)


CRUD = Crud(
    noun="domain",
    key="NAME",
    columns=COLUMNS,
    opts=OPTS,
    message=domain_pb2.Domain,
    list_items=_list,
    get=_get,
    create=_create,
    update=_update,
    delete=_delete,
)


def register(sub: Any, common: argparse.ArgumentParser) -> None:
    cmds = subcommands(sub, "domain", "domains: the top of the tenancy tree")
    register_crud(cmds, common, CRUD)
