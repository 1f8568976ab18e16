"""``bai vfolder ...``: virtual folders: create, list, inspect, trash, restore, purge,
rename, clone; their files and sharing live in vfolder_files and vfolder_sharing.

A folder is named by its id or by its name: the API takes ids, so names are looked
up with ListVFolders among the folders you can see (your own win over shared ones
of the same name).
"""

from __future__ import annotations

import argparse
import json
from collections.abc import Sequence
from typing import Any, TypeAlias

from bai.api.common.v1 import storage_pb2
from bai.api.manager.v1 import vfolder_pb2
from bai.cli.admin._common import UUID, add_paging, leaf, project_id, take
from bai.cli.context import Context, UsageError
from bai.cli.fields import enum_choices
from bai.cli.output import print_list, print_object, table, to_dict
from bai.cli.tasks import finish_task
from bai.client import Client, errors
from bai.client._requests import short_enum_name

FolderStatus: TypeAlias = vfolder_pb2.FolderStatus.ValueType
TRASH: list[FolderStatus] = [
    vfolder_pb2.FOLDER_STATUS_DELETE_PENDING,
    vfolder_pb2.FOLDER_STATUS_DELETE_ONGOING,
    vfolder_pb2.FOLDER_STATUS_DELETE_ERROR,
]
VISIBLE: list[FolderStatus] = [
    s
    for s in vfolder_pb2.FolderStatus.values()
    if s and s != vfolder_pb2.FOLDER_STATUS_DELETE_COMPLETE
]
USAGE_MODES = enum_choices(storage_pb2.FolderUsageMode.DESCRIPTOR)
PERMISSIONS = {
    "ro": storage_pb2.MOUNT_PERMISSION_READ_ONLY,
    "rw": storage_pb2.MOUNT_PERMISSION_READ_WRITE,
    "wd": storage_pb2.MOUNT_PERMISSION_READ_WRITE_DELETE,
}
PERMISSION_HELP = "ro (read-only), rw (read-write) or wd (read-write-delete)"

COLUMNS = [
    ("NAME", "name"),
    ("ID", "id"),
    ("HOST", "host"),
    ("OWNERSHIP", "ownership_type"),
    ("USAGE", "usage_mode"),
    ("PERMISSION", "caller_permission"),
    ("OWNER", "is_owner"),
    ("STATUS", "status"),
    ("CLONEABLE", "cloneable"),
]


def folder_id(client: Client, ref: str, statuses: Sequence[FolderStatus] = ()) -> str:
    """``ref`` if it is an id, else the id of the folder named ``ref`` you can see
    (with one of ``statuses``; default: the live ones)."""
    if UUID.match(ref):
        return ref
    found = [f for f in client.vfolders.iter_vfolders(statuses=list(statuses)) if f.name == ref]
    if len(found) > 1:
        own = [f for f in found if f.is_owner]
        found = own if len(own) == 1 else found
    if not found:
        where = " in the trash" if list(statuses) == TRASH else ""
        raise errors.NotFound(f"no vfolder named {ref!r}{where}", reason="NOT_FOUND")
    if len(found) > 1:
        ids = ", ".join(f.id for f in found)
        raise UsageError(f"several vfolders are named {ref!r} ({ids}): give the id")
    return found[0].id


def add_folder_arg(p: argparse.ArgumentParser, help_text: str = "the folder's name or id") -> None:
    p.add_argument("folder", metavar="NAME|ID", help=help_text)


def create(args: argparse.Namespace, ctx: Context) -> int:
    client = ctx.client()
    project = project_id(client, args.project) if args.project else None
    folder = client.vfolders.create_vfolder(
        name=args.name,
        host=args.host or None,
        project_id=project,
        usage_mode=args.usage_mode,
        permission=PERMISSIONS[args.permission] if args.permission else None,
        cloneable=args.cloneable,
    ).vfolder
    if ctx.json:
        print_object(ctx, folder)
    else:
        ctx.print(f"created vfolder {folder.name} ({folder.id}) on {folder.host}")
    return 0


def ls(args: argparse.Namespace, ctx: Context) -> int:
    client = ctx.client()
    statuses = TRASH if args.trash else []
    items = client.vfolders.iter_vfolders(
        page_size=args.page_size,
        statuses=statuses,
        usage_mode=args.usage_mode,
        host=args.host,
        project_id=project_id(client, args.project) if args.project else None,
        all_users=args.all_users or None,
    )
    print_list(ctx, take(items, args), COLUMNS)
    return 0


def info(args: argparse.Namespace, ctx: Context) -> int:
    client = ctx.client()
    reply = client.vfolders.get_vfolder(vfolder_id=folder_id(client, args.folder, VISIBLE))
    usage: vfolder_pb2.GetVFolderUsageResponse | None = None
    if reply.vfolder.status == vfolder_pb2.FOLDER_STATUS_READY:
        usage = client.vfolders.get_vfolder_usage(vfolder_id=reply.vfolder.id)
    if ctx.json:
        data = to_dict(reply)
        data["usage"] = to_dict(usage) if usage is not None else None
        ctx.print(json.dumps(data, indent=2))
        return 0
    extra = []
    if usage is not None:
        extra = [("files", str(usage.file_count)), ("used_bytes", str(usage.used_bytes))]
    print_object(ctx, reply.vfolder, extra)
    if reply.shares:
        ctx.print()
        rows = [
            [s.email, short_enum_name(storage_pb2.MountPermission.DESCRIPTOR, s.permission)]
            for s in reply.shares
        ]
        ctx.print(table(["SHARED WITH", "PERMISSION"], rows))
    return 0


def _status(folder: vfolder_pb2.VFolder) -> str:
    return short_enum_name(vfolder_pb2.FolderStatus.DESCRIPTOR, folder.status)


def rm(args: argparse.Namespace, ctx: Context) -> int:
    client = ctx.client()
    folder = client.vfolders.delete_vfolder(vfolder_id=folder_id(client, args.folder)).vfolder
    if ctx.json:
        print_object(ctx, folder)
    else:
        ctx.print(
            f"moved vfolder {folder.name} ({folder.id}) to the trash: `bai vfolder restore` "
            "brings it back, `bai vfolder purge` deletes it for good"
        )
    return 0


def restore(args: argparse.Namespace, ctx: Context) -> int:
    client = ctx.client()
    ref = folder_id(client, args.folder, TRASH)
    folder = client.vfolders.restore_vfolder(vfolder_id=ref).vfolder
    if ctx.json:
        print_object(ctx, folder)
    else:
        ctx.print(f"restored vfolder {folder.name} ({folder.id}): {_status(folder)}")
    return 0


def purge(args: argparse.Namespace, ctx: Context) -> int:
    client = ctx.client()
    folder = client.vfolders.purge_vfolder(vfolder_id=folder_id(client, args.folder, TRASH)).vfolder
    if ctx.json:
        print_object(ctx, folder)
    else:
        ctx.print(f"purged vfolder {folder.name} ({folder.id}): {_status(folder)}")
    return 0


def _update(ctx: Context, ref: str, changes: vfolder_pb2.VFolder, paths: list[str]) -> int:
    client = ctx.client()
    changes.id = folder_id(client, ref)
    folder = client.vfolders.update_vfolder(vfolder=changes, update_mask=paths).vfolder
    if ctx.json:
        print_object(ctx, folder)
    else:
        ctx.print(f"updated vfolder {folder.name} ({folder.id}): {', '.join(paths)}")
    return 0


def rename(args: argparse.Namespace, ctx: Context) -> int:
    return _update(ctx, args.folder, vfolder_pb2.VFolder(name=args.new_name), ["name"])


def update_options(args: argparse.Namespace, ctx: Context) -> int:
    changes, paths = vfolder_pb2.VFolder(), list[str]()
    if args.permission:
        changes.permission = PERMISSIONS[args.permission]
        paths.append("permission")
    if args.cloneable is not None:
        changes.cloneable = args.cloneable
        paths.append("cloneable")
    if args.usage_mode:
        prefix = "FOLDER_USAGE_MODE_"
        changes.usage_mode = storage_pb2.FolderUsageMode.Value(
            prefix + args.usage_mode.upper().replace("-", "_")
        )
        paths.append("usage_mode")
    if not paths:
        raise UsageError("nothing to update: give --permission, --cloneable or --usage-mode")
    return _update(ctx, args.folder, changes, paths)


def clone(args: argparse.Namespace, ctx: Context) -> int:
    client = ctx.client()
    reply = client.vfolders.clone_vfolder(
        vfolder_id=folder_id(client, args.folder),
        target_name=args.target_name,
        target_host=args.target_host or None,
        usage_mode=args.usage_mode,
        cloneable=args.cloneable,
    )
    target = reply.vfolder
    if args.no_wait or not reply.task_id:
        if ctx.json:
            ctx.print(json.dumps(to_dict(reply), indent=2))
        else:
            ctx.print(f"cloning into vfolder {target.name} ({target.id}); task {reply.task_id}")
        return 0
    finish_task(ctx, client, reply.task_id, f"cloning into {target.name}", "CLONE_FAILED")
    folder = client.vfolders.get_vfolder(vfolder_id=target.id).vfolder
    if ctx.json:
        print_object(ctx, folder)
    else:
        ctx.print(f"cloned into vfolder {folder.name} ({folder.id}): {_status(folder)}")
    return 0


def hosts(args: argparse.Namespace, ctx: Context) -> int:
    reply = ctx.client().vfolders.list_vfolder_hosts()
    if ctx.json:
        ctx.print(json.dumps(to_dict(reply), indent=2))
        return 0
    rows = [
        [
            h.name + (" (default)" if h.name == reply.default_host else ""),
            h.backend,
            ",".join(h.capabilities) or "-",
            ",".join(h.permissions.permissions) or "-",
        ]
        for h in reply.hosts
    ]
    ctx.print(table(["HOST", "BACKEND", "CAPABILITIES", "YOUR PERMISSIONS"], rows))
    return 0


def _register_folders(cmds: Any, common: argparse.ArgumentParser) -> None:
    p = leaf(
        cmds,
        "create",
        "create a folder",
        create,
        common,
        description="Create a folder named NAME on HOST (default: your default host; see "
        "`bai vfolder hosts`), owned by you or, with --project, by a project.",
    )
    p.add_argument("name", metavar="NAME", help="1-64 characters of [A-Za-z0-9._-]")
    p.add_argument("host", nargs="?", metavar="HOST", help="storage host, PROXY:VOLUME")
    p.add_argument("-g", "--project", "--group", metavar="PROJECT", help="project id or name")
    p.add_argument(
        "-m", "--usage-mode", choices=USAGE_MODES, help="what it holds (default general)"
    )
    p.add_argument(
        "-p",
        "--permission",
        choices=sorted(PERMISSIONS),
        help="project folders: the members' permission (default rw)",
    )
    p.add_argument("--cloneable", action="store_true", help="let others who see it clone it")
    p = leaf(
        cmds,
        "ls",
        "list the folders you can use",
        ls,
        common,
        aliases=["list"],
        description="List the folders you can use: your own, your projects', and those "
        "shared with you; --trash lists the deleted ones instead.",
    )
    p.add_argument("--trash", action="store_true", help="list folders in the trash")
    p.add_argument("-m", "--usage-mode", choices=USAGE_MODES, help="only this usage mode")
    p.add_argument("--host", help="only folders on this host")
    p.add_argument("-g", "--project", "--group", metavar="PROJECT", help="only this project's")
    p.add_argument("--all-users", action="store_true", help="admins: every folder of the domain")
    add_paging(p)
    p = leaf(cmds, "info", "show a folder: settings, usage, whom it is shared with", info, common)
    add_folder_arg(p)
    p = leaf(
        cmds,
        "rm",
        "move a folder to the trash",
        rm,
        common,
        aliases=["delete"],
        description="Move a folder to the trash. Its files stay until `bai vfolder purge`; "
        "`bai vfolder restore` brings it back. A folder mounted in a session cannot be deleted.",
    )
    add_folder_arg(p)
    p = leaf(
        cmds, "restore", "take a folder out of the trash", restore, common, aliases=["recover"]
    )
    add_folder_arg(p, "name or id of a folder in the trash")
    p = leaf(
        cmds,
        "purge",
        "delete a folder in the trash and its files for good",
        purge,
        common,
        aliases=["delete-trash"],
    )
    add_folder_arg(p, "name or id of a folder in the trash")
    p = leaf(cmds, "rename", "rename a folder", rename, common)
    add_folder_arg(p)
    p.add_argument("new_name", metavar="NEW_NAME", help="the new name")
    p = leaf(
        cmds,
        "update-options",
        "change a folder's permission, cloneable flag or usage mode",
        update_options,
        common,
    )
    add_folder_arg(p)
    p.add_argument("-p", "--permission", choices=sorted(PERMISSIONS), help=PERMISSION_HELP)
    p.add_argument(
        "--cloneable", action=argparse.BooleanOptionalAction, default=None, help="allow cloning"
    )
    p.add_argument("-m", "--usage-mode", choices=USAGE_MODES, help="what it holds")
    p = leaf(
        cmds,
        "clone",
        "copy a folder into a new folder of yours",
        clone,
        common,
        description="Copy a folder (yours, or a cloneable one) into a new folder TARGET_NAME "
        "owned by you, and wait for the copy with progress lines (unless --no-wait).",
    )
    add_folder_arg(p, "the folder to copy: name or id")
    p.add_argument("target_name", metavar="TARGET_NAME", help="name of the new folder")
    p.add_argument("target_host", nargs="?", metavar="TARGET_HOST", help="default: the source's")
    p.add_argument("-m", "--usage-mode", choices=USAGE_MODES, help="default: the source's")
    p.add_argument("--cloneable", action="store_true", help="let others clone the copy")
    p.add_argument("--no-wait", action="store_true", help="return once the copy has started")
    leaf(cmds, "hosts", "list the storage hosts you may use", hosts, common, aliases=["list-hosts"])


def register(sub: Any, name: str, help_text: str, common: argparse.ArgumentParser) -> None:
    from bai.cli import vfolder_files, vfolder_sharing

    p = sub.add_parser(
        name,
        help=help_text,
        description=(
            "Virtual folders: storage that you fill with `upload`, share with others, and "
            "mount into sessions. NAME|ID is a folder's id or the name of a folder you can "
            "see. File contents go straight to the storage proxy, resuming after a broken "
            "connection."
        ),
    )
    cmds = p.add_subparsers(dest="vfolder_command", metavar="COMMAND", required=True)
    _register_folders(cmds, common)
    vfolder_files.register(cmds, common)
    vfolder_sharing.register(cmds, common)
