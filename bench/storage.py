#!/usr/bin/env python3
"""bench/storage: upload and download of one file through Envoy to the storage proxy.

Boots a real storage proxy (`bai storage start`, a `vfs` volume in a temp
dir) and the real gateway Envoy in front of it, then, in one run:

  * baseline: `cp` of the same file on the same file system (page cache warm);
  * upload: FileService.Upload through Envoy in 1 MiB chunks, sha256 declared
    (computed before the clock starts) and checked by the proxy;
  * download: FileService.Download through Envoy, written to a file.

Throughput is the file size over the wall time of each transfer; the value
is the slower of upload and download, its ratio to `cp` is checked against
the target (>= 0.5). The proxy's peak RSS (VmHWM, the whole process life,
so it covers the transfers) must stay under 200 MB: it streams, it never
holds the file. The last line is the JSON summary.

    python bench/storage.py [--size 1GiB]
"""

from __future__ import annotations

import argparse
import asyncio
import hashlib
import json
import os
import shutil
import subprocess
import tempfile
import time
import uuid
from collections.abc import AsyncIterator
from pathlib import Path

import grpc

from bai.api.common.v1 import storage_pb2 as common
from bai.api.storage.v1 import file_pb2, file_pb2_grpc, storage_pb2, storage_pb2_grpc
from bai.stack.testing import free_ports
from bai.storage.testing import GatewayProcess, ProxyProcess

TARGET_RATIO = 0.5
RSS_TARGET_MB = 200.0
CHUNK = 1 << 20
MANAGER_TOKEN = "bench-manager-token"
AUTH = (("x-bai-storage-auth-token", MANAGER_TOKEN),)
UNITS = {
    "": 1,
    "k": 1 << 10,
    "kib": 1 << 10,
    "m": 1 << 20,
    "mib": 1 << 20,
    "g": 1 << 30,
    "gib": 1 << 30,
}
CHANNEL_OPTIONS = [("grpc.max_receive_message_length", 16 << 20)]


def parse_size(text: str) -> int:
    lowered = text.strip().lower()
    digits = lowered.rstrip("abcdefghijklmnopqrstuvwxyz")
    return int(float(digits) * UNITS[lowered[len(digits) :]])


def write_source(path: Path, size: int) -> str:
    """A file of random bytes (a 16 MiB random block repeated); returns its sha256."""
    block = os.urandom(16 << 20)
    digest = hashlib.sha256()
    with path.open("wb") as out:
        left = size
        while left:
            piece = block[: min(left, len(block))]
            out.write(piece)
            digest.update(piece)
            left -= len(piece)
    return digest.hexdigest()


def timed_cp(source: Path, target: Path) -> float:
    started = time.perf_counter()
    subprocess.run(["cp", str(source), str(target)], check=True)
    elapsed = time.perf_counter() - started
    target.unlink()
    return elapsed


async def upload_requests(
    source: Path, header: file_pb2.UploadHeader
) -> AsyncIterator[file_pb2.UploadRequest]:
    yield file_pb2.UploadRequest(header=header)
    with source.open("rb") as f:
        while block := f.read(CHUNK):
            yield file_pb2.UploadRequest(chunk=block)


async def transfer(
    proxy: ProxyProcess, envoy: GatewayProcess, source: Path, target: Path, size: int, digest: str
) -> tuple[float, float]:
    ref = storage_pb2.VFolderRef(
        volume="local",
        quota_scope=common.QuotaScope(type=common.QUOTA_SCOPE_TYPE_USER, id=str(uuid.uuid4())),
        folder_id=str(uuid.uuid4()),
    )
    async with grpc.aio.insecure_channel(f"127.0.0.1:{proxy.manager_port}") as channel:
        storage = storage_pb2_grpc.StorageServiceStub(channel)
        await storage.CreateVFolder(storage_pb2.CreateVFolderRequest(vfolder=ref), metadata=AUTH)

        async def token(op: storage_pb2.TransferOp.ValueType) -> str:
            request = storage_pb2.IssueTransferTokenRequest(op=op, vfolder=ref, relpath="big.bin")
            reply = await storage.IssueTransferToken(request, metadata=AUTH)
            return str(reply.token)

        up_token = await token(storage_pb2.TRANSFER_OP_UPLOAD)
        address = f"127.0.0.1:{envoy.port}"
        async with grpc.aio.insecure_channel(address, options=CHANNEL_OPTIONS) as gateway:
            files = file_pb2_grpc.FileServiceStub(gateway)
            header = file_pb2.UploadHeader(token=up_token, total_size=size, sha256=digest)
            started = time.perf_counter()
            done = await files.Upload(upload_requests(source, header))
            upload_s = time.perf_counter() - started
            if not done.complete or done.sha256 != digest:
                raise RuntimeError(f"upload incomplete or corrupted: {done}")
            down_token = await token(storage_pb2.TRANSFER_OP_DOWNLOAD)
            received = 0
            started = time.perf_counter()
            with target.open("wb") as out:
                async for reply in files.Download(file_pb2.DownloadRequest(token=down_token)):
                    out.write(reply.chunk)
                    received += len(reply.chunk)
            download_s = time.perf_counter() - started
    if received != size:
        raise RuntimeError(f"downloaded {received} of {size} bytes")
    return upload_s, download_s


def peak_rss_mb(pid: int) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) / 1024
    raise RuntimeError("no VmHWM in /proc status")


def run(size: int) -> dict[str, object]:
    work = Path(tempfile.mkdtemp(prefix="bai-bench-storage-", dir="/var/tmp"))
    volume = work / "volume"
    volume.mkdir()
    proxy_port, manager_port, listen, admin = free_ports(4)
    proxy = ProxyProcess(
        volume,
        work / "proxy.log",
        client_port=proxy_port,
        manager_port=manager_port,
        jwt_secret=os.urandom(32).hex(),
        manager_token=MANAGER_TOKEN,
    )
    envoy = GatewayProcess(work, listen_port=listen, admin_port=admin, storage_port=proxy_port)
    try:
        source = work / "source.bin"
        digest = write_source(source, size)
        proxy.start()
        envoy.start()
        cp_s = timed_cp(source, volume / "cp-copy.bin")
        upload_s, download_s = asyncio.run(
            transfer(proxy, envoy, source, work / "downloaded.bin", size, digest)
        )
        rss = peak_rss_mb(proxy.pid)
    finally:
        envoy.stop()
        proxy.stop()
        shutil.rmtree(work, ignore_errors=True)
    mb = size / 1e6
    cp_mbps, up_mbps, down_mbps = mb / cp_s, mb / upload_s, mb / download_s
    value = min(up_mbps, down_mbps)
    ratio = value / cp_mbps
    print(f"file size                 {size} bytes")
    print(f"cp                        {cp_mbps:10.1f} MB/s  ({cp_s:.2f} s)")
    print(f"upload through Envoy      {up_mbps:10.1f} MB/s  ({upload_s:.2f} s)")
    print(f"download through Envoy    {down_mbps:10.1f} MB/s  ({download_s:.2f} s)")
    print(f"proxy peak RSS            {rss:10.1f} MB")
    return {
        "bench": "storage_transfer",
        "value": round(value, 1),
        "unit": "MB/s",
        "baseline": round(cp_mbps, 1),
        "ratio": round(ratio, 3),
        "target": TARGET_RATIO,
        "ok": ratio >= TARGET_RATIO and rss < RSS_TARGET_MB,
        "size_bytes": size,
        "upload_mbps": round(up_mbps, 1),
        "download_mbps": round(down_mbps, 1),
        "upload_ratio": round(up_mbps / cp_mbps, 3),
        "download_ratio": round(down_mbps / cp_mbps, 3),
        "proxy_peak_rss_mb": round(rss, 1),
        "rss_target_mb": RSS_TARGET_MB,
    }


def main() -> int:
    parser = argparse.ArgumentParser(description=(__doc__ or "").split("\n\n")[0])
    parser.add_argument("--size", default="1GiB", help="file size, e.g. 1GiB, 64MiB, 1000000")
    args = parser.parse_args()
    print(json.dumps(run(parse_size(args.size))))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
