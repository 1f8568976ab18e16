"""``bai session upload|download|files``: files in a session's /home/work.

REMOTE paths are relative to /home/work (or absolute under it). A download goes
to a temporary file next to LOCAL that replaces LOCAL only once every byte has
arrived, so a failed download leaves no half file behind.
"""

from __future__ import annotations

import argparse
import json
import os
import posixpath
import secrets
import stat
import sys
from pathlib import Path
from typing import Any

from bai.api.common.v1 import storage_pb2
from bai.cli.admin._common import leaf
from bai.cli.context import Context, UsageError
from bai.cli.output import EMPTY, path_text, table, to_dict
from bai.cli.units import format_size
from bai.client import download_file, upload_file
from bai.client._requests import short_enum_name

STDIO = "-"
_TYPE_BITS = {
    storage_pb2.FILE_TYPE_DIRECTORY: stat.S_IFDIR,
    storage_pb2.FILE_TYPE_SYMLINK: stat.S_IFLNK,
    storage_pb2.FILE_TYPE_FILE: stat.S_IFREG,
}


def remote_name(local: str, remote: str | None) -> str:
    """REMOTE as given, LOCAL's base name when absent, or under REMOTE when it ends in /."""
    base = os.path.basename(local)
    if not remote:
        return base
    return remote + base if remote.endswith("/") else remote


def local_name(remote: str, local: str | None) -> Path:
    """LOCAL as given, REMOTE's base name when absent, or inside LOCAL when it is a directory."""
    base = posixpath.basename(remote.rstrip("/"))
    if not base or base in (".", ".."):
        raise UsageError(f"{remote!r} does not name a file")
    if not local:
        return Path(base)
    target = Path(local)
    return target / base if local.endswith(os.sep) or target.is_dir() else target


def upload(args: argparse.Namespace, ctx: Context) -> int:
    from bai.cli.session_cmd import session_id

    source: str | bytes = args.local
    if args.local == STDIO:
        if not args.remote or args.remote.endswith("/"):
            raise UsageError("give REMOTE (a file name) when uploading stdin")
        source = sys.stdin.buffer.read()
    elif Path(args.local).is_dir():
        raise UsageError(f"{args.local} is a directory: upload files one at a time")
    remote = remote_name(args.local, args.remote)
    client = ctx.client()
    sid = session_id(client, args.session)
    reply = upload_file(client, sid, source, remote, kernel_id=args.kernel or "")
    if ctx.json:
        ctx.print(json.dumps(to_dict(reply), indent=2))
    else:
        ctx.print(f"uploaded {args.local} to {reply.path} ({reply.size} bytes)")
    return 0


def download(args: argparse.Namespace, ctx: Context) -> int:
    from bai.cli.session_cmd import session_id

    client = ctx.client()
    sid = session_id(client, args.session)
    kernel_id = args.kernel or ""
    if args.local == STDIO:
        size = download_file(client, sid, args.remote, sys.stdout.buffer, kernel_id=kernel_id)
        sys.stdout.buffer.flush()
        ctx.note(f"downloaded {args.remote} ({size} bytes)")
        return 0
    target = local_name(args.remote, args.local)
    # Next to the target (so the rename stays on one file system), with the
    # permissions a new file gets.
    partial = target.with_name(f".{target.name}.{secrets.token_hex(4)}.bai-download")
    try:
        with partial.open("xb") as sink:
            size = download_file(client, sid, args.remote, sink, kernel_id=kernel_id)
        os.replace(partial, target)
    finally:
        partial.unlink(missing_ok=True)
    if ctx.json:
        ctx.print(json.dumps({"path": str(target), "size": size}, indent=2))
    else:
        ctx.print(f"downloaded {args.remote} to {target} ({size} bytes)")
    return 0


def _mode_text(entry: storage_pb2.FileEntry) -> str:
    return stat.filemode(_TYPE_BITS.get(entry.type, 0) | entry.mode)


def _name_text(entry: storage_pb2.FileEntry) -> str:
    if entry.type == storage_pb2.FILE_TYPE_DIRECTORY:
        return entry.name + "/"
    if entry.type == storage_pb2.FILE_TYPE_SYMLINK:
        return f"{entry.name} -> {entry.symlink_target}"
    return entry.name


def files_table(entries: list[storage_pb2.FileEntry]) -> str:
    rows = [
        [
            _mode_text(e),
            short_enum_name(storage_pb2.FileType.DESCRIPTOR, e.type),
            format_size(e.size) if e.type != storage_pb2.FILE_TYPE_DIRECTORY else EMPTY,
            path_text(e, "modified_at"),
            _name_text(e),
        ]
        for e in entries
    ]
    return table(["MODE", "TYPE", "SIZE", "MODIFIED", "NAME"], rows)


def files(args: argparse.Namespace, ctx: Context) -> int:
    from bai.cli.session_cmd import session_id

    client = ctx.client()
    reply = client.sessions.list_session_files(
        session_id=session_id(client, args.session), kernel_id=args.kernel or "", path=args.path
    )
    if ctx.json:
        ctx.print(json.dumps(to_dict(reply), indent=2))
        return 0
    ctx.print(files_table(list(reply.entries)))
    if reply.truncated:
        ctx.note(f"(only the first {len(reply.entries)} entries are shown)")
    return 0


def register(cmds: Any, common: argparse.ArgumentParser) -> None:
    p = leaf(
        cmds,
        "upload",
        "copy a local file into the session",
        upload,
        common,
        description="Copy LOCAL (a file, or - for stdin) to REMOTE in the session's "
        "/home/work (default: LOCAL's name; a REMOTE ending in / is a directory). Parent "
        "directories are created; an existing file is replaced.",
    )
    p.add_argument("session", metavar="ID|NAME", help="session id, or name of a live session")
    p.add_argument("local", metavar="LOCAL", help="the file to send, or - for stdin")
    p.add_argument("remote", nargs="?", metavar="REMOTE", help="destination under /home/work")
    p.add_argument("--kernel", metavar="KERNEL_ID", help="another kernel of the session")
    p = leaf(
        cmds,
        "download",
        "copy a file out of the session",
        download,
        common,
        description="Copy REMOTE (under the session's /home/work) to LOCAL (default: "
        "REMOTE's name in the current directory; an existing directory receives it; - "
        "writes to stdout).",
    )
    p.add_argument("session", metavar="ID|NAME", help="session id, or name of a live session")
    p.add_argument("remote", metavar="REMOTE", help="the file, relative to /home/work")
    p.add_argument("local", nargs="?", metavar="LOCAL", help="where to write it, or - for stdout")
    p.add_argument("--kernel", metavar="KERNEL_ID", help="another kernel of the session")
    p = leaf(
        cmds,
        "files",
        "list a directory in the session",
        files,
        common,
        aliases=["ls-files"],
        description="List PATH (default /home/work) in the session's main kernel (or "
        "--kernel): mode, type, size, modification time and name.",
    )
    p.add_argument("session", metavar="ID|NAME", help="session id, or name of a live session")
    p.add_argument("path", nargs="?", default="", metavar="PATH", help="relative to /home/work")
    p.add_argument("--kernel", metavar="KERNEL_ID", help="another kernel of the session")
