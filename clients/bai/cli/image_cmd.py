"""``bai image ...``: list and inspect kernel images; alias, forget, rescan and pull them.

An image is named by its id (UUID) or by a reference: its canonical name
("cr.backend.ai/stable/python:3.12"), "name:tag" or an alias, resolved for one
architecture (``--arch``; default x86_64) with GetImage. Changing the catalogue
(alias, dealias, rescan, pull, forget of registry images) is for superadmins.
"""

from __future__ import annotations

import argparse
import json
from itertools import islice
from typing import Any

from google.protobuf.message import Message

from bai.api.common.v1 import session_pb2
from bai.api.manager.v1 import bgtask_pb2, image_pb2
from bai.cli.admin._common import UUID, add_paging, leaf
from bai.cli.context import Context
from bai.cli.fields import enum_choices
from bai.cli.output import EMPTY, path_text, print_done, table, to_dict
from bai.cli.tasks import finish_task
from bai.cli.units import format_size
from bai.client import Client
from bai.client._requests import short_enum_name

ARCHITECTURES = ("x86_64", "aarch64")
TYPE_CHOICES = enum_choices(image_pb2.ImageType.DESCRIPTOR)
LIST_HEADERS = ["ID", "CANONICAL", "ARCH", "SIZE", "TYPE", "ALIASES", "NOTES"]
REF_HELP = "image id, canonical name, name:tag or alias"


def image_id(client: Client, ref: str, architecture: str | None) -> str:
    """``ref`` if it is an id, else the id of the image it resolves to for ``architecture``."""
    if UUID.match(ref):
        return ref
    return client.images.get_image(reference=ref, architecture=architecture).image.id


def get_image(client: Client, ref: str, architecture: str | None) -> image_pb2.Image:
    if UUID.match(ref):
        return client.images.get_image(image_id=ref).image
    return client.images.get_image(reference=ref, architecture=architecture).image


def _type(image: image_pb2.Image) -> str:
    return short_enum_name(image_pb2.ImageType.DESCRIPTOR, image.type) if image.type else EMPTY


def notes(image: image_pb2.Image) -> str:
    """Markers for images that are not plain registry images: local, customized, deleted."""
    marks = []
    if image.is_local:
        marks.append("local")
    if image.owner_user_id:
        marks.append("customized")
    if image.status == image_pb2.IMAGE_STATUS_DELETED:
        marks.append("deleted")
    return ",".join(marks) or EMPTY


def list_row(image: image_pb2.Image, with_agents: bool) -> list[str]:
    row = [
        image.id,
        image.canonical,
        image.architecture or EMPTY,
        format_size(image.size_bytes),
        _type(image),
        ",".join(image.aliases) or EMPTY,
        notes(image),
    ]
    return [*row, str(len(image.installed_agent_ids))] if with_agents else row


def ls(args: argparse.Namespace, ctx: Context) -> int:
    images = ctx.client().images.iter_images(
        page_size=args.page_size,
        architecture=args.arch,
        registry=args.registry,
        name_contains=args.name,
        type=args.type,
        installed_in_scaling_group=args.scaling_group,
        include_installed_agents=args.installed or None,
        include_deleted=args.deleted or None,
        customized_only=args.customized or None,
    )
    if args.installed:
        images = (image for image in images if image.installed_agent_ids)
    found = list(islice(images, args.limit))
    if ctx.json:
        ctx.print(json.dumps([to_dict(image) for image in found], indent=2))
        return 0
    headers = LIST_HEADERS + (["AGENTS"] if args.installed else [])
    ctx.print(table(headers, [list_row(image, args.installed) for image in found]))
    return 0


def _slot_value(slot: str, value: str) -> str:
    """Memory bounds in binary units (they are bytes); other slots as given."""
    if slot == "mem" and value.isdigit():
        return format_size(int(value))
    return value


def info_rows(image: image_pb2.Image) -> list[tuple[str, str]]:
    return [
        ("id", image.id),
        ("canonical", image.canonical),
        ("architecture", image.architecture or EMPTY),
        ("digest", image.digest or EMPTY),
        ("size", f"{format_size(image.size_bytes)} ({image.size_bytes} bytes)"),
        ("type", _type(image)),
        ("status", short_enum_name(image_pb2.ImageStatus.DESCRIPTOR, image.status)),
        ("registry", image.registry or EMPTY),
        ("aliases", ", ".join(image.aliases) or EMPTY),
        ("accelerators", ", ".join(image.supported_accelerators) or EMPTY),
        ("features", ", ".join(image.features) or EMPTY),
        ("local", "yes" if image.is_local else "no"),
        ("owner", image.owner_user_id or EMPTY),
        ("agents", ", ".join(image.installed_agent_ids) or EMPTY),
        ("created_at", path_text(image, "created_at")),
        ("updated_at", path_text(image, "updated_at")),
    ]


def info(args: argparse.Namespace, ctx: Context) -> int:
    image = get_image(ctx.client(), args.image, args.arch)
    if ctx.json:
        ctx.print(json.dumps(to_dict(image), indent=2))
        return 0
    rows = info_rows(image)
    width = max(len(key) for key, _ in rows)
    for key, value in rows:
        ctx.print(f"{key.ljust(width)}  {value}")
    ports = [
        [
            p.name,
            short_enum_name(session_pb2.AppProtocol.DESCRIPTOR, p.protocol),
            ",".join(str(port) for port in p.container_ports) or EMPTY,
            "yes" if p.is_inference else "no",
        ]
        for p in image.service_ports
    ]
    limits = [
        [lim.slot, _slot_value(lim.slot, lim.min or "0"), _slot_value(lim.slot, lim.max or EMPTY)]
        for lim in image.resource_limits
    ]
    labels = [[key, image.labels[key]] for key in sorted(image.labels)]
    for headers, body in (
        (["SERVICE", "PROTOCOL", "PORTS", "INFERENCE"], ports),
        (["SLOT", "MIN", "MAX"], limits),
        (["LABEL", "VALUE"], labels),
    ):
        if body:
            ctx.print()
            ctx.print(table(headers, body))
    return 0


def alias(args: argparse.Namespace, ctx: Context) -> int:
    client = ctx.client()
    target = image_id(client, args.image, args.arch)
    image = client.images.alias_image(alias=args.alias, image_id=target).image
    if ctx.json:
        ctx.print(json.dumps(to_dict(image), indent=2))
    else:
        ctx.print(f"alias {args.alias} -> {image.canonical} ({image.architecture}, {image.id})")
    return 0


def dealias(args: argparse.Namespace, ctx: Context) -> int:
    reply = ctx.client().images.dealias_image(alias=args.alias)
    print_done(ctx, f"removed alias {args.alias}", reply)
    return 0


def _print_reply(ctx: Context, reply: Message, text: str) -> None:
    if ctx.json:
        ctx.print(json.dumps(to_dict(reply), indent=2))
    else:
        ctx.print(text)


def _follow(
    ctx: Context, client: Client, task_id: str, no_wait: bool, label: str, reason: str
) -> bgtask_pb2.BackgroundTask | None:
    """The finished task, or None when there is none to follow (it ran within the call,
    or the manager does not run it as a task yet) or --no-wait."""
    if not task_id or no_wait:
        return None
    return finish_task(ctx, client, task_id, label, reason)


def forget(args: argparse.Namespace, ctx: Context) -> int:
    client = ctx.client()
    target = image_id(client, args.image, args.arch)
    reply = client.images.forget_image(
        image_id=target, remove_from_agents=args.remove_from_agents or None
    )
    image = reply.image
    text = f"forgot image {image.canonical} ({image.architecture}, {image.id})"
    label = f"removing {image.canonical} from agents"
    if _follow(ctx, client, reply.task_id, args.no_wait, label, "FORGET_FAILED") is not None:
        text += " and removed it from the agents"
    elif reply.task_id:
        text += f"; removing it from agents: task {reply.task_id}"
    _print_reply(ctx, reply, text)
    return 0


def _scope(args: argparse.Namespace) -> str:
    parts = [f"registry {args.registry}" if args.registry else "every registry"]
    if args.project:
        parts.append(f"project {args.project}")
    if args.reference:
        parts.append(f"image {args.reference}")
    return " ".join(parts)


def rescan(args: argparse.Namespace, ctx: Context) -> int:
    client = ctx.client()
    reply = client.images.rescan_images(
        registry=args.registry, project=args.project, reference=args.reference
    )
    scope = _scope(args)
    task = _follow(ctx, client, reply.task_id, args.no_wait, f"rescanning {scope}", "RESCAN_FAILED")
    if task is not None:
        _print_reply(ctx, task, f"rescanned {scope}")
    elif reply.task_id:
        _print_reply(ctx, reply, f"rescanning {scope}; task {reply.task_id}")
    else:
        _print_reply(ctx, reply, f"rescanned {scope}")
    return 0


def pull(args: argparse.Namespace, ctx: Context) -> int:
    client = ctx.client()
    image = get_image(client, args.image, args.arch)
    reply = client.images.pull_image(
        image_id=image.id,
        agent_ids=args.agent or None,
        scaling_group=args.scaling_group,
        force=args.force or None,
    )
    where = ", ".join(args.agent) if args.agent else "every agent"
    if args.scaling_group:
        where += f" of scaling group {args.scaling_group}"
    what = f"{image.canonical} ({image.architecture})"
    label = f"pulling {what}"
    task = _follow(ctx, client, reply.task_id, args.no_wait, label, "IMAGE_PULL_FAILED")
    if task is not None:
        _print_reply(ctx, task, f"pulled {what} on {where}")
    elif reply.task_id:
        _print_reply(ctx, reply, f"pulling {what} on {where}; task {reply.task_id}")
    else:
        _print_reply(
            ctx,
            reply,
            f"started pulling {what} on {where}; `bai image info` lists the agents that have it",
        )
    return 0


def _image_arg(p: argparse.ArgumentParser) -> None:
    p.add_argument("image", metavar="REF|ID", help=REF_HELP)
    _arch_arg(p, "architecture a reference resolves to (default: x86_64)")


def _arch_arg(p: argparse.ArgumentParser, help_text: str) -> None:
    p.add_argument("--arch", choices=ARCHITECTURES, help=help_text)


def _no_wait_arg(p: argparse.ArgumentParser) -> None:
    p.add_argument(
        "--no-wait", action="store_true", help="print the background task's id and return"
    )


def _register_reading(cmds: Any, common: argparse.ArgumentParser) -> None:
    p = leaf(
        cmds,
        "ls",
        "list the images you can use",
        ls,
        common,
        aliases=["list"],
        description="List the images you can use (those of your domain's registries and "
        "your customized ones; superadmins: all), ordered by canonical name and "
        "architecture. NOTES marks local images (built or committed on an agent), "
        "customized ones (owned by a user) and deleted ones.",
    )
    p.add_argument("--customized", action="store_true", help="only your customized images")
    p.add_argument("--registry", metavar="R", help="only images of this registry")
    p.add_argument("--name", metavar="SUBSTR", help="only canonical names containing SUBSTR")
    _arch_arg(p, "only this architecture")
    p.add_argument("--type", choices=TYPE_CHOICES, help="only this kind of image")
    p.add_argument(
        "--scaling-group",
        metavar="SG",
        help="only images installed on an agent of this scaling group",
    )
    p.add_argument(
        "--installed",
        action="store_true",
        help="only images installed on some agent; adds an AGENTS column (how many)",
    )
    p.add_argument("--deleted", action="store_true", help="include forgotten images (superadmin)")
    add_paging(p)
    p = leaf(
        cmds,
        "info",
        "show an image: digest, size, labels, service ports, resource limits, agents",
        info,
        common,
    )
    _image_arg(p)


def _register_changing(cmds: Any, common: argparse.ArgumentParser) -> None:
    p = leaf(
        cmds,
        "alias",
        "point an alias (e.g. python) at an image (superadmin)",
        alias,
        common,
        description="Point ALIAS at an image, so that sessions can name the image by it. "
        "Setting an alias to the image it already names succeeds; an alias that names "
        "another image must be removed with `bai image dealias` first. Superadmin only.",
    )
    p.add_argument("alias", metavar="ALIAS", help="1-128 characters of A-Z a-z 0-9 . _ : / -")
    _image_arg(p)
    p = leaf(cmds, "dealias", "remove an alias (superadmin)", dealias, common)
    p.add_argument("alias", metavar="ALIAS", help="the alias to remove")
    p = leaf(
        cmds,
        "forget",
        "mark an image deleted so that new sessions cannot use it",
        forget,
        common,
        aliases=["rm"],
        description="Mark an image DELETED in the catalogue: new sessions cannot use it, "
        "running ones are not affected. Superadmin, or the owner of a customized image.",
    )
    _image_arg(p)
    p.add_argument(
        "--remove-from-agents",
        action="store_true",
        help="also delete the agents' copies (a background task, followed unless --no-wait)",
    )
    _no_wait_arg(p)
    p = leaf(
        cmds,
        "rescan",
        "read images and their labels from container registries (superadmin)",
        rescan,
        common,
        description="Rescan a registry (default: every registry), or one project or image "
        "of it, and update the catalogue with new images, digests and labels. "
        "Superadmin only.",
    )
    p.add_argument("--registry", metavar="R", help="only this registry, e.g. cr.backend.ai")
    p.add_argument("--project", metavar="P", help="only this project (namespace) of it")
    p.add_argument(
        "--reference", metavar="PROJECT/NAME[:TAG]", help="only this image of the registry"
    )
    _no_wait_arg(p)
    p = leaf(
        cmds,
        "pull",
        "make agents pull an image ahead of use (superadmin)",
        pull,
        common,
        description="Make agents pull an image before sessions need it: the given agents, "
        "else every live agent of the image's architecture (in --scaling-group when given). "
        "Agents that have the same digest skip it unless --force. Superadmin only.",
    )
    _image_arg(p)
    p.add_argument(
        "--agent",
        action="append",
        default=[],
        metavar="ID",
        help="pull on this agent (repeatable; default: every agent)",
    )
    p.add_argument("--scaling-group", metavar="SG", help="only agents of this scaling group")
    p.add_argument("--force", action="store_true", help="pull even where the image is present")
    _no_wait_arg(p)


def register(sub: Any, name: str, help_text: str, common: argparse.ArgumentParser) -> None:
    p = sub.add_parser(
        name,
        help=help_text,
        description=(
            "Kernel images: list and inspect the images sessions run, alias and forget them, "
            "rescan registries, pull images onto agents. REF|ID is an image id, or a "
            "canonical name, name:tag or alias resolved for --arch (default: x86_64)."
        ),
    )
    cmds = p.add_subparsers(dest="image_command", metavar="COMMAND", required=True)
    _register_reading(cmds, common)
    _register_changing(cmds, common)
