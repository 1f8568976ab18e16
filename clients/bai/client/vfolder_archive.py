"""Whole directories out of virtual folders, as one zip stream from the storage proxy.

    from bai.client.vfolder_archive import download_archive, download_dir

    download_dir(client, folder_id, "outputs", "local-outputs")   # extracted
    with open("outputs.zip", "wb") as sink:
        download_archive(client, folder_id, "outputs", sink)      # the zip itself

Over HTTP (see ``transport`` in bai.client.vfolder_transfers) the zip is the
chunked reply of ``GET /storage/v1/download``; over gRPC, FileService's stream.
An archive stream has no ranges (its size is unknown in advance), so a broken
one starts over: the sink must be seekable, and is rewound and truncated to
where it started. Entries are extracted only when their names stay inside the
target directory.
"""

from __future__ import annotations

import os
import posixpath
import tempfile
import zipfile
from datetime import timedelta
from pathlib import Path
from typing import BinaryIO

import grpc

from bai.client import errors
from bai.client._client import Client
from bai.client.vfolder_http import Progress
from bai.client.vfolder_transfers import (
    DEFAULT_RETRY,
    DownloadResult,
    TransferRetry,
    TransferSession,
    Transport,
    download_token,
    retry_wait,
)


def download_archive(
    client: Client,
    vfolder_id: str,
    path: str,
    sink: BinaryIO,
    *,
    progress: Progress | None = None,
    retry: TransferRetry = DEFAULT_RETRY,
    file_service_address: str | None = None,
    ttl: timedelta | None = None,
    transport: Transport = "auto",
) -> DownloadResult:
    """Write the folder's directory ``path`` (empty: the whole folder) to the seekable
    ``sink`` as a zip archive; a broken stream starts over. Returns the zip's size."""
    if not sink.seekable():
        raise ValueError("an archive download needs a seekable sink (it may start over)")
    start = sink.tell()
    issue = download_token(client, vfolder_id, path, True, ttl)
    session = TransferSession(client, issue, file_service_address, transport)
    received, attempt = 0, 0

    def on_block(at: int, size: int, total: int) -> None:
        nonlocal received
        if at != received:
            raise errors.Internal(
                f"{path}: archive chunk at {at}, expected {received}",
                code=grpc.StatusCode.DATA_LOSS,
            )
        received += size
        session.progressed()
        if progress is not None:
            progress(received, 0)

    try:
        while True:
            attempt += 1
            sink.seek(start)
            sink.truncate()
            received = 0
            try:
                session.download(0, 0, sink, on_block)
                return DownloadResult(path, received, attempt)
            except errors.BaiError as exc:
                err = exc
            retry_wait(session, retry, err, attempt)
    finally:
        session.close()


def member_target(root: Path, name: str) -> Path | None:
    """Where a zip entry goes under ``root``; None for a directory entry. Raises
    ValueError for a name that would leave ``root`` (absolute, ``..``, backslash,
    NUL), which a well-behaved server never sends."""
    if "\\" in name or "\x00" in name or name.startswith("/") or posixpath.isabs(name):
        raise ValueError(f"archive entry {name!r} is not a relative path")
    parts = [p for p in name.split("/") if p not in ("", ".")]
    if ".." in parts:
        raise ValueError(f"archive entry {name!r} leaves the target directory")
    if name.endswith("/") or not parts:
        return None
    return root.joinpath(*parts)


def extract_archive(archive: BinaryIO, root: Path) -> int:
    """Extract the zip ``archive`` into ``root`` (created); returns the file count.
    Every name is checked first, so a bad archive writes nothing."""
    with zipfile.ZipFile(archive) as bundle:
        entries = [(info, member_target(root, info.filename)) for info in bundle.infolist()]
        root.mkdir(parents=True, exist_ok=True)
        files = 0
        for info, target in entries:
            if target is None:
                root.joinpath(info.filename).mkdir(parents=True, exist_ok=True)
                continue
            target.parent.mkdir(parents=True, exist_ok=True)
            with bundle.open(info) as source, open(target, "wb") as out:
                while block := source.read(1 << 20):
                    out.write(block)
            files += 1
    return files


def download_dir(
    client: Client,
    vfolder_id: str,
    path: str,
    target: str | os.PathLike[str],
    *,
    progress: Progress | None = None,
    retry: TransferRetry = DEFAULT_RETRY,
    file_service_address: str | None = None,
    ttl: timedelta | None = None,
    transport: Transport = "auto",
) -> tuple[DownloadResult, int]:
    """Download the folder's directory ``path`` into the local directory ``target``
    (created; existing files with the same names are replaced). The zip goes to an
    unnamed temporary file first. Returns the transfer and the number of files."""
    root = Path(target)
    parent = root.parent if root.parent.exists() else None
    with tempfile.TemporaryFile(dir=parent) as spool:
        result = download_archive(
            client,
            vfolder_id,
            path,
            spool,
            progress=progress,
            retry=retry,
            file_service_address=file_service_address,
            ttl=ttl,
            transport=transport,
        )
        spool.seek(0)
        count = extract_archive(spool, root)
    return result, count
