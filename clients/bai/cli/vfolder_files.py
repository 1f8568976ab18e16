"""``bai vfolder mkdir|files|mv|rm-file|upload|download``: the files in a folder.

Paths inside a folder are relative to its root, "/"-separated. Transfers go
straight to the storage proxy (bai.client.vfolder_transfers; over the gateway's
plain-HTTP endpoints or FileService, --via) with a progress bar on a terminal,
and resume by themselves after a broken connection. A download is written next
to its target under a temporary name and renamed once complete, so a failed
download leaves no half file; a directory arrives as a zip stream that is
extracted (or kept, with --zip).
"""

from __future__ import annotations

import argparse
import itertools
import json
import os
import posixpath
import secrets
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from bai.cli.admin._common import leaf
from bai.cli.context import Context, UsageError
from bai.cli.output import print_done, to_dict
from bai.cli.session_files import files_table
from bai.cli.tasks import finish_task
from bai.cli.vfolder_cmd import add_folder_arg, folder_id
from bai.cli.vfolder_progress import TransferBar
from bai.client import Client, errors
from bai.client.vfolder_archive import download_archive, download_dir
from bai.client.vfolder_transfers import download_file, upload_file

STDOUT = "-"


def mkdir(args: argparse.Namespace, ctx: Context) -> int:
    client = ctx.client()
    reply = client.vfolders.mkdir(
        vfolder_id=folder_id(client, args.folder),
        paths=args.paths,
        parents=args.parents,
        exist_ok=args.exist_ok,
    )
    print_done(ctx, f"created {', '.join(args.paths)}", reply)
    return 0


def files(args: argparse.Namespace, ctx: Context) -> int:
    client = ctx.client()
    items = client.vfolders.iter_files(vfolder_id=folder_id(client, args.folder), path=args.path)
    entries = list(itertools.islice(items, args.limit))
    if ctx.json:
        ctx.print(json.dumps({"entries": [to_dict(e) for e in entries]}, indent=2))
    else:
        ctx.print(files_table(entries))
    return 0


def mv(args: argparse.Namespace, ctx: Context) -> int:
    client = ctx.client()
    reply = client.vfolders.move_file(
        vfolder_id=folder_id(client, args.folder),
        source_path=args.source,
        target_path=args.target,
        overwrite=args.overwrite,
    )
    print_done(ctx, f"moved {args.source} to {args.target}", reply)
    return 0


def rm_file(args: argparse.Namespace, ctx: Context) -> int:
    client = ctx.client()
    reply = client.vfolders.delete_files(
        vfolder_id=folder_id(client, args.folder), paths=args.paths, recursive=args.recursive
    )
    if reply.task_id:  # a recursive deletion runs as a background task: wait for it
        what = f"deleting {', '.join(args.paths)}"
        finish_task(ctx, client, reply.task_id, "deleting", "DELETE_FAILED", what)
    print_done(ctx, f"deleted {', '.join(args.paths)}", reply)
    return 0


def upload_plan(locals_: list[str], base_dir: str | None, to: str) -> Iterator[tuple[Path, str]]:
    """(local file, remote path) for each file to send. Without --base-dir a file
    goes under its own name and a directory keeps its name and structure; with it,
    LOCAL paths are relative to the base directory and keep that relative path."""
    for given in locals_:
        local = Path(base_dir, given) if base_dir else Path(given)
        if base_dir:
            rel = Path(given).as_posix()
            if Path(given).is_absolute() or ".." in Path(given).parts:
                raise UsageError(f"{given}: with --base-dir, give paths inside it")
        else:
            rel = local.resolve().name
        if local.is_dir():
            for item in sorted(local.rglob("*")):
                if item.is_file():
                    inner = item.relative_to(local).as_posix()
                    yield item, posixpath.join(to, rel, inner)
        elif local.exists():
            yield local, posixpath.join(to, rel)
        else:
            raise FileNotFoundError(2, "No such file or directory", str(local))


def upload(args: argparse.Namespace, ctx: Context) -> int:
    client = ctx.client()
    ref = folder_id(client, args.folder)
    plan = list(upload_plan(args.locals, args.base_dir, (args.to or "").lstrip("/")))
    results = []
    for local, remote in plan:
        bar = TransferBar(remote, enabled=None if not ctx.json else False)
        try:
            result = upload_file(
                client,
                ref,
                local,
                remote,
                progress=bar,
                file_service_address=args.storage_proxy,
                transport=args.via,
            )
        finally:
            bar.close()
        results.append(result)
        if result.attempts > 1:
            ctx.note(f"{remote}: resumed after {result.attempts - 1} broken attempt(s)")
        if not ctx.json:
            ctx.print(f"uploaded {local} to {args.folder}:{remote} ({result.size} bytes)")
    if ctx.json:
        rows = [
            {"path": r.path, "size": r.size, "sha256": r.sha256, "attempts": r.attempts}
            for r in results
        ]
        ctx.print(json.dumps(rows, indent=2))
    return 0


def _partial(target: Path) -> Path:
    return target.with_name(f".{target.name}.{secrets.token_hex(4)}.bai-download")


def _download_one(
    ctx: Context, client: Client, ref: str, remote: str, target: Path, args: argparse.Namespace
) -> dict[str, Any]:
    """Download ``remote`` to ``target``: a file, or a directory (extracted or zipped)."""
    bar = TransferBar(remote or "/", enabled=None if not ctx.json else False)
    partial = _partial(target)
    proxy = args.storage_proxy
    try:
        try:
            with partial.open("xb") as sink:
                result = download_file(
                    client,
                    ref,
                    remote,
                    sink,
                    offset=args.offset,
                    length=args.length,
                    progress=bar,
                    file_service_address=proxy,
                    transport=args.via,
                )
            os.replace(partial, target)
            return {"path": str(target), "size": result.size, "kind": "file"}
        except errors.FailedPrecondition as exc:
            if exc.reason != "PATH_TYPE_MISMATCH":
                raise
        if args.offset or args.length:
            raise UsageError(f"{remote or '/'} is a directory: --offset/--length need a file")
        if args.zip:
            with partial.open("w+b") as sink:
                result = download_archive(
                    client,
                    ref,
                    remote,
                    sink,
                    progress=bar,
                    file_service_address=proxy,
                    transport=args.via,
                )
            os.replace(partial, target)
            return {"path": str(target), "size": result.size, "kind": "zip"}
        result, count = download_dir(
            client,
            ref,
            remote,
            target,
            progress=bar,
            file_service_address=proxy,
            transport=args.via,
        )
        return {"path": str(target), "size": result.size, "kind": "directory", "files": count}
    finally:
        bar.close()
        partial.unlink(missing_ok=True)


def _target(remote: str, folder: str, args: argparse.Namespace) -> Path:
    if args.output:
        return Path(args.output)
    base = posixpath.basename(posixpath.normpath(remote)) if remote.strip("/.") else folder
    if args.zip and not base.endswith(".zip"):
        base += ".zip"
    return Path(args.base_dir or ".") / base


def download(args: argparse.Namespace, ctx: Context) -> int:
    if (args.output or args.offset or args.length) and len(args.remotes) > 1:
        raise UsageError("-o/--output, --offset and --length take a single REMOTE")
    remotes = [r.lstrip("/") for r in args.remotes]  # "/x" is x in the folder
    client = ctx.client()
    ref = folder_id(client, args.folder)
    if args.output == STDOUT:
        result = download_file(
            client,
            ref,
            remotes[0],
            sys.stdout.buffer,
            offset=args.offset,
            length=args.length,
            file_service_address=args.storage_proxy,
            transport=args.via,
        )
        sys.stdout.buffer.flush()
        ctx.note(f"downloaded {remotes[0]} ({result.size} bytes)")
        return 0
    if args.base_dir:
        Path(args.base_dir).mkdir(parents=True, exist_ok=True)
    done = []
    for remote in remotes:
        target = _target(remote, args.folder, args)
        outcome = _download_one(ctx, client, ref, remote, target, args)
        done.append(outcome)
        if not ctx.json:
            what = f"{outcome['files']} files, " if outcome["kind"] == "directory" else ""
            size = outcome["size"]
            ctx.print(f"downloaded {args.folder}:{remote or '/'} to {target} ({what}{size} bytes)")
    if ctx.json:
        ctx.print(json.dumps(done, indent=2))
    return 0


def _storage_proxy_args(p: argparse.ArgumentParser) -> None:
    p.add_argument(
        "--storage-proxy",
        metavar="ADDRESS",
        help="reach the storage proxy here instead of the address the manager gives "
        "(upstream: --override-storage-proxy)",
    )
    p.add_argument(
        "--via",
        choices=("auto", "grpc", "http"),
        default="auto",
        help="how the bytes travel: http, the gateway's plain-HTTP /storage/v1/ endpoints "
        "(fastest); grpc, the storage proxy's FileService; auto (default), http unless the "
        "address has no HTTP endpoint (a storage proxy's own gRPC port), then grpc",
    )


def register(cmds: Any, common: argparse.ArgumentParser) -> None:
    p = leaf(cmds, "mkdir", "create directories in a folder", mkdir, common)
    add_folder_arg(p)
    p.add_argument("paths", nargs="+", metavar="PATH", help="directory to create")
    p.add_argument("-p", "--parents", action="store_true", help="create missing parents")
    p.add_argument("-e", "--exist-ok", action="store_true", help="an existing directory is fine")
    p = leaf(
        cmds,
        "files",
        "list a directory of a folder",
        files,
        common,
        aliases=["ls-files"],
        description="List PATH (default: the folder's root): mode, type, size, "
        "modification time and name.",
    )
    add_folder_arg(p)
    p.add_argument("path", nargs="?", default="", metavar="PATH", help="directory in the folder")
    p.add_argument("--limit", type=int, metavar="N", help="show at most N entries")
    p = leaf(
        cmds,
        "mv",
        "move or rename a file or directory within a folder",
        mv,
        common,
        description="Move SRC to DST within the folder; an existing directory DST receives "
        "SRC inside it. An existing file DST is replaced only with --overwrite.",
    )
    add_folder_arg(p)
    p.add_argument("source", metavar="SRC", help="path in the folder")
    p.add_argument("target", metavar="DST", help="new path in the folder")
    p.add_argument("-f", "--overwrite", action="store_true", help="replace an existing file")
    p = leaf(cmds, "rm-file", "delete files in a folder", rm_file, common, aliases=["delete-file"])
    add_folder_arg(p)
    p.add_argument("paths", nargs="+", metavar="PATH", help="file or directory to delete")
    p.add_argument("-r", "--recursive", action="store_true", help="delete non-empty directories")
    p = leaf(
        cmds,
        "upload",
        "send local files into a folder",
        upload,
        common,
        description="Send LOCAL files (directories recursively) into the folder, straight to "
        "the storage proxy in 1 MiB blocks (over HTTP or gRPC: --via), checked with sha256; "
        "a broken connection is resumed where it stopped. A file lands under its name "
        "(in --to DIR); with --base-dir, LOCAL paths are relative to it and keep that "
        "path in the folder. An existing file is replaced once the new one is complete.",
    )
    add_folder_arg(p)
    p.add_argument("locals", nargs="+", metavar="LOCAL", help="file or directory to send")
    p.add_argument("-b", "--base-dir", metavar="DIR", help="LOCAL paths are relative to DIR")
    p.add_argument("--to", metavar="DIR", help="directory in the folder (default: its root)")
    _storage_proxy_args(p)
    p = leaf(
        cmds,
        "download",
        "fetch files or directories from a folder",
        download,
        common,
        description="Fetch REMOTE paths from the folder into --base-dir (default: the "
        "current directory) under their names, or to -o FILE (- for stdout). A directory "
        "comes as one zip stream, extracted into a directory of its name (kept as NAME.zip "
        "with --zip). A broken connection is resumed; a failed download leaves no file.",
    )
    add_folder_arg(p)
    p.add_argument("remotes", nargs="+", metavar="REMOTE", help="path in the folder")
    p.add_argument("-b", "--base-dir", metavar="DIR", help="where to put them (default: .)")
    p.add_argument("-o", "--output", metavar="FILE", help="write the one REMOTE here (- stdout)")
    p.add_argument("--zip", action="store_true", help="keep directories as zip archives")
    p.add_argument("--offset", type=int, default=0, metavar="N", help="start at byte N (files)")
    p.add_argument("--length", type=int, default=0, metavar="N", help="fetch N bytes (files)")
    _storage_proxy_args(p)
