"""``bai vfolder invite|invitations|accept|reject|cancel|leave|share|unshare``.

Your own folders are shared by invitation: the invitee accepts (or rejects) it,
and may leave later. Project folders are visible to the project's members; share
and unshare set or remove a per-user permission (for user folders: change the
permission of users who already have access, or take it away).
"""

from __future__ import annotations

import argparse
import json
from typing import Any

from bai.api.common.v1 import storage_pb2
from bai.api.manager.v1 import vfolder_pb2
from bai.cli.admin._common import leaf
from bai.cli.context import Context, UsageError
from bai.cli.fields import enum_choices
from bai.cli.output import print_done, print_list, print_object, to_dict
from bai.cli.vfolder_cmd import PERMISSION_HELP, PERMISSIONS, add_folder_arg, folder_id
from bai.client._requests import short_enum_name

INVITATION_STATUSES = enum_choices(vfolder_pb2.FolderInvitationStatus.DESCRIPTOR)
INVITATION_COLUMNS = [
    ("ID", "id"),
    ("FOLDER", "vfolder_name"),
    ("FROM", "inviter_email"),
    ("TO", "invitee_email"),
    ("PERMISSION", "permission"),
    ("STATUS", "status"),
    ("CREATED", "created_at"),
]


def _perm_name(value: int) -> str:
    return short_enum_name(storage_pb2.MountPermission.DESCRIPTOR, value)


def invite(args: argparse.Namespace, ctx: Context) -> int:
    client = ctx.client()
    reply = client.vfolders.invite_to_vfolder(
        vfolder_id=folder_id(client, args.folder),
        invitee_emails=args.emails,
        permission=PERMISSIONS[args.perm],
    )
    if ctx.json:
        ctx.print(json.dumps(to_dict(reply), indent=2))
        return 0
    for inv in reply.invitations:
        ctx.print(
            f"invited {inv.invitee_email} to {inv.vfolder_name} "
            f"({_perm_name(inv.permission)}): invitation {inv.id}"
        )
    return 0


def _statuses(values: list[str]) -> list[str]:
    names = [v.strip() for item in values for v in item.split(",") if v.strip()]
    bad = [n for n in names if n not in INVITATION_STATUSES]
    if bad:
        raise UsageError(
            f"--status: unknown {', '.join(bad)} (one of: {', '.join(INVITATION_STATUSES)})"
        )
    return names


def invitations(args: argparse.Namespace, ctx: Context) -> int:
    statuses = INVITATION_STATUSES if args.all else _statuses(args.status)
    items = ctx.client().vfolders.iter_vfolder_invitations(
        direction="sent" if args.sent else "received", statuses=statuses
    )
    print_list(ctx, list(items), INVITATION_COLUMNS)
    return 0


def _answered(ctx: Context, verb: str, invitation: vfolder_pb2.VFolderInvitation) -> int:
    if ctx.json:
        print_object(ctx, invitation)
    else:
        ctx.print(f"{verb} invitation {invitation.id} to {invitation.vfolder_name}")
    return 0


def accept(args: argparse.Namespace, ctx: Context) -> int:
    reply = ctx.client().vfolders.accept_vfolder_invitation(invitation_id=args.invitation)
    return _answered(ctx, "accepted", reply.invitation)


def reject(args: argparse.Namespace, ctx: Context) -> int:
    reply = ctx.client().vfolders.reject_vfolder_invitation(invitation_id=args.invitation)
    return _answered(ctx, "rejected", reply.invitation)


def cancel(args: argparse.Namespace, ctx: Context) -> int:
    reply = ctx.client().vfolders.cancel_vfolder_invitation(invitation_id=args.invitation)
    return _answered(ctx, "withdrew", reply.invitation)


def leave(args: argparse.Namespace, ctx: Context) -> int:
    client = ctx.client()
    reply = client.vfolders.leave_vfolder(vfolder_id=folder_id(client, args.folder))
    print_done(ctx, f"left vfolder {args.folder}", reply)
    return 0


def share(args: argparse.Namespace, ctx: Context) -> int:
    client = ctx.client()
    reply = client.vfolders.share_vfolder(
        vfolder_id=folder_id(client, args.folder),
        emails=args.emails,
        permission=PERMISSIONS[args.perm],
    )
    if ctx.json:
        ctx.print(json.dumps(to_dict(reply), indent=2))
        return 0
    for s in reply.shares:
        ctx.print(f"shared {args.folder} with {s.email} ({_perm_name(s.permission)})")
    return 0


def unshare(args: argparse.Namespace, ctx: Context) -> int:
    client = ctx.client()
    reply = client.vfolders.unshare_vfolder(
        vfolder_id=folder_id(client, args.folder), emails=args.emails
    )
    print_done(ctx, f"unshared {args.folder} from {', '.join(args.emails)}", reply)
    return 0


def _perm_arg(p: argparse.ArgumentParser) -> None:
    p.add_argument(
        "-p",
        "--perm",
        "--permission",
        choices=sorted(PERMISSIONS),
        default="rw",
        help=f"{PERMISSION_HELP}; default rw",
    )


def register(cmds: Any, common: argparse.ArgumentParser) -> None:
    p = leaf(
        cmds,
        "invite",
        "invite users to one of your folders",
        invite,
        common,
        description="Invite users (by email) to a folder you own; each gets a pending "
        "invitation to accept with `bai vfolder accept`.",
    )
    add_folder_arg(p)
    p.add_argument("emails", nargs="+", metavar="EMAIL", help="whom to invite")
    _perm_arg(p)
    p = leaf(
        cmds,
        "invitations",
        "list invitations you received (or sent)",
        invitations,
        common,
        description="List folder invitations you received (--sent: that you sent); pending "
        "ones unless --status or --all. Answer them with accept or reject.",
    )
    p.add_argument("--sent", action="store_true", help="invitations you sent")
    p.add_argument(
        "--status",
        action="append",
        default=[],
        metavar="STATUS",
        help=f"only these (repeatable or comma-separated): {', '.join(INVITATION_STATUSES)}",
    )
    p.add_argument("--all", action="store_true", help="whatever their status")
    for name, func, text in (
        ("accept", accept, "accept an invitation: the folder appears in your list"),
        ("reject", reject, "reject an invitation"),
        ("cancel", cancel, "withdraw an invitation you sent"),
    ):
        p = leaf(cmds, name, text, func, common)
        p.add_argument("invitation", metavar="INVITATION_ID", help="from `bai vfolder invitations`")
    p = leaf(cmds, "leave", "give up a folder shared with you", leave, common)
    add_folder_arg(p)
    p = leaf(
        cmds,
        "share",
        "set users' permission on a folder",
        share,
        common,
        description="Give users (by email) PERM on a project folder (overriding the folder's "
        "permission for them), or change the permission of users a folder of yours is "
        "shared with.",
    )
    add_folder_arg(p)
    p.add_argument("emails", nargs="+", metavar="EMAIL", help="whose permission to set")
    _perm_arg(p)
    p = leaf(
        cmds,
        "unshare",
        "remove users' permission on a folder",
        unshare,
        common,
        description="Remove the per-user permission of users (project folders: back to the "
        "folder's permission; your folders: they lose access).",
    )
    add_folder_arg(p)
    p.add_argument("emails", nargs="+", metavar="EMAIL", help="whose permission to remove")
