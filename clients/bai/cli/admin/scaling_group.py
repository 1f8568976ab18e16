"""``bai admin scaling-group ls|info|create|update|rm|associate|disassociate|allowed``.

Upstream's short name ``sgroup`` works too. ``update`` reads the group first so that
changing one scheduler option keeps the others (scheduler_opts is replaced whole).
"""

from __future__ import annotations

import argparse
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

from google.protobuf.message import Message

from bai.api.manager.v1 import scaling_group_pb2 as sg
from bai.cli.admin._common import Crud, leaf, project_id, register_crud, subcommands
from bai.cli.context import Context, UsageError
from bai.cli.fields import Opt
from bai.cli.output import print_done, print_list

COLUMNS = [
    ("NAME", "name"),
    ("ACTIVE", "is_active"),
    ("PUBLIC", "is_public"),
    ("DEFAULT", "is_default"),
    ("SCHEDULER", "scheduler"),
    ("SELECTION", "scheduler_opts.agent_selection_strategy"),
    ("DRIVER", "driver"),
    ("WSPROXY", "wsproxy_addr"),
]

OPTS = [
    Opt("--description", "description", "str", "free text"),
    Opt("--active", "is_active", "bool", "accept new sessions", update_only=True),
    Opt("--public", "is_public", "bool", "visible to and usable by role user"),
    Opt("--default", "is_default", "bool", "make this the default group"),
    Opt("--wsproxy-addr", "wsproxy_addr", "str", "app-proxy address, http(s)://host:port"),
    Opt("--driver", "driver", "str", "agent provisioning driver (default: static)"),
    Opt("--driver-opt", "driver_opts", "map", "driver option KEY=VALUE (repeatable)"),
    Opt(
        "--scheduler",
        "scheduler",
        "enum",
        "pending-session ordering (default: fifo)",
        enum=sg.SchedulerType.DESCRIPTOR,
    ),
    Opt(
        "--allowed-session-type",
        "scheduler_opts.allowed_session_types",
        "list",
        "interactive, batch or inference (repeatable)",
    ),
    Opt(
        "--pending-timeout",
        "scheduler_opts.pending_timeout",
        "seconds",
        "cancel sessions pending longer; 0: never",
    ),
    Opt(
        "--agent-selection",
        "scheduler_opts.agent_selection_strategy",
        "enum",
        "how agents are picked",
        enum=sg.AgentSelectionStrategy.DESCRIPTOR,
    ),
    Opt(
        "--fractional-fragmentation",
        "scheduler_opts.allow_fractional_resource_fragmentation",
        "bool",
        "allow fractional slots to fragment across devices",
    ),
    Opt("--host-network", "use_host_network", "bool", "kernels use the host's network"),
]


def _list(ctx: Context, args: argparse.Namespace) -> Iterable[Message]:
    return ctx.client().scaling_groups.iter_scaling_groups(
        page_size=args.page_size, domain_name=args.domain
    )


def _get(ctx: Context, args: argparse.Namespace) -> Message:
    return ctx.client().scaling_groups.get_scaling_group(name=args.key).scaling_group


def _create(ctx: Context, args: argparse.Namespace, message: Message) -> Message:
    assert isinstance(message, sg.ScalingGroup)
    message.name = args.key
    return ctx.client().scaling_groups.create_scaling_group(scaling_group=message).scaling_group


def _update(ctx: Context, args: argparse.Namespace, message: Message, paths: list[str]) -> Message:
    assert isinstance(message, sg.ScalingGroup)
    groups = ctx.client().scaling_groups
    if "scheduler_opts" in paths:
        current = groups.get_scaling_group(name=args.key).scaling_group.scheduler_opts
        wanted = sg.SchedulerOptions()
        wanted.CopyFrom(current)
        for field, value in message.scheduler_opts.ListFields():
            wanted.ClearField(field.name)  # type: ignore[arg-type]
            wanted.MergeFrom(sg.SchedulerOptions(**{field.name: value}))
        if "scheduler_opts" in (getattr(args, "clear", None) or []):
            wanted.Clear()
        message.scheduler_opts.CopyFrom(wanted)
    message.name = args.key
    return groups.update_scaling_group(scaling_group=message, update_mask=paths).scaling_group


def _delete(ctx: Context, args: argparse.Namespace) -> Message:
    return ctx.client().scaling_groups.delete_scaling_group(name=args.key)


CRUD = Crud(
    noun="scaling group",
    key="NAME",
    columns=COLUMNS,
    opts=OPTS,
    message=sg.ScalingGroup,
    list_items=_list,
    get=_get,
    create=_create,
    update=_update,
    delete=_delete,
    list_filters=lambda p: p.add_argument("--domain", help="only groups of this domain"),
)


@dataclass(frozen=True)
class Target:
    """Exactly one of a domain, a project (id) or an access key."""

    domain_name: str | None = None
    project_id: str | None = None
    access_key: str | None = None

    def __str__(self) -> str:
        if self.domain_name:
            return f"domain {self.domain_name}"
        if self.project_id:
            return f"project {self.project_id}"
        return f"keypair {self.access_key}"


def _target(ctx: Context, args: argparse.Namespace) -> Target:
    if args.project:
        return Target(project_id=project_id(ctx.client(), args.project, args.project_domain))
    if args.domain:
        return Target(domain_name=args.domain)
    if args.access_key:
        return Target(access_key=args.access_key)
    raise UsageError("give one of --domain, --project, --access-key")


def associate(args: argparse.Namespace, ctx: Context) -> int:
    t = _target(ctx, args)
    response = ctx.client().scaling_groups.associate_scaling_group(
        scaling_group_name=args.key,
        domain_name=t.domain_name,
        project_id=t.project_id,
        access_key=t.access_key,
    )
    print_done(ctx, f"associated scaling group {args.key} with {t}", response)
    return 0


def disassociate(args: argparse.Namespace, ctx: Context) -> int:
    t = _target(ctx, args)
    response = ctx.client().scaling_groups.disassociate_scaling_group(
        scaling_group_name=args.key,
        domain_name=t.domain_name,
        project_id=t.project_id,
        access_key=t.access_key,
    )
    print_done(ctx, f"disassociated scaling group {args.key} from {t}", response)
    return 0


def allowed(args: argparse.Namespace, ctx: Context) -> int:
    client = ctx.client()
    pid = project_id(client, args.project, args.project_domain) if args.project else None
    response = client.scaling_groups.list_allowed_scaling_groups(project_id=pid)
    print_list(ctx, response.scaling_groups, COLUMNS)
    return 0


def register(sub: Any, common: argparse.ArgumentParser) -> None:
    cmds = subcommands(
        sub, "scaling-group", "scaling groups (resource groups) of agents", aliases=["sgroup"]
    )
    register_crud(cmds, common, CRUD)
    for name, func, verb in (
        ("associate", associate, "allow a domain, project or keypair to use a scaling group"),
        ("disassociate", disassociate, "remove such an association"),
    ):
        p = leaf(cmds, name, verb, func, common)
        p.add_argument("key", metavar="NAME", help="scaling group")
        target = p.add_mutually_exclusive_group(required=True)
        target.add_argument("--domain", help="a domain name")
        target.add_argument("--project", help="a project id or name")
        target.add_argument("--access-key", help="a keypair's access key")
        p.add_argument("--project-domain", help="domain of --project when given by name")
    p = leaf(cmds, "allowed", "scaling groups the caller may start sessions in", allowed, common)
    p.add_argument("--project", help="for this project (id or name)")
    p.add_argument("--project-domain", help="domain of --project when given by name")
