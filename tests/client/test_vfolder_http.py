"""The SDK's vfolder transfers over the storage proxy's plain-HTTP endpoints, through
the real gateway Envoy to a real storage proxy (tests.client.http_transfer_stack):
round trips, ranges, directories, resume after the proxy is killed mid-transfer,
error codes and reasons, token renewal, and what "auto" picks."""

from __future__ import annotations

import hashlib
import io
import os
import threading
from collections.abc import Mapping
from pathlib import Path

import grpc
import pytest

from bai.cli.main import main
from bai.client import Client, errors
from bai.client.vfolder_archive import download_archive, download_dir
from bai.client.vfolder_transfers import TransferRetry, download_file, upload_file
from bai.stack.testing import free_ports
from bai.storage.testing import GatewayProcess
from tests.client.fakes import ACCESS_KEY, SECRET_KEY
from tests.client.http_transfer_stack import (
    GRPC_DOWNLOAD,
    GRPC_UPLOAD,
    HTTP_DOWNLOAD,
    HTTP_UPLOAD,
    Stack,
    client,
    missing,
    stack,
)

__all__ = ["client", "stack"]

MiB = 1 << 20
FAST = TransferRetry(attempts=4, initial_backoff=0.05, max_backoff=0.2)
PATIENT = TransferRetry(attempts=12, initial_backoff=0.2, max_backoff=1.0)

pytestmark = pytest.mark.skipif(missing() is not None, reason=missing() or "")


def local_file(tmp_path: Path, size: int, name: str = "big.bin") -> tuple[Path, bytes]:
    path = tmp_path / name
    data = os.urandom(size)
    path.write_bytes(data)
    return path, data


def test_round_trip_and_ranges_over_http(stack: Stack, client: Client, tmp_path: Path) -> None:
    folder = stack.new_folder(stack.gateway_url)
    source, data = local_file(tmp_path, 3 * MiB + 12345)
    before = stack.requests()
    seen: list[tuple[int, int]] = []
    result = upload_file(
        client, folder, source, "in/big.bin", transport="http", progress=lambda *p: seen.append(p)
    )
    assert (result.size, result.sha256, result.attempts) == (
        len(data),
        hashlib.sha256(data).hexdigest(),
        1,
    )
    assert seen[0] == (MiB, len(data)) and seen[-1] == (len(data), len(data))

    sink = io.BytesIO()
    got = download_file(client, folder, "in/big.bin", sink, transport="http")
    assert sink.getvalue() == data and got.size == len(data)
    sink = io.BytesIO()
    download_file(client, folder, "in/big.bin", sink, offset=MiB + 7, length=10, transport="http")
    assert sink.getvalue() == data[MiB + 7 : MiB + 17]
    sink = io.BytesIO()
    download_file(client, folder, "in/big.bin", sink, offset=2 * MiB, transport="http")
    assert sink.getvalue() == data[2 * MiB :]
    sink = io.BytesIO()  # from the very end: empty, as over gRPC
    assert download_file(client, folder, "in/big.bin", sink, offset=len(data)).size == 0
    with pytest.raises(errors.InvalidArgument) as beyond:
        download_file(client, folder, "in/big.bin", io.BytesIO(), offset=len(data) - 1, length=2)
    assert beyond.value.field_violations[0].field == "length"

    expected: dict[str, float] = {
        HTTP_UPLOAD: 1,
        HTTP_DOWNLOAD: 5,
        GRPC_UPLOAD: 0,
        GRPC_DOWNLOAD: 0,
    }
    assert stack.grown(before, expected) == expected


def test_directory_download_over_http(stack: Stack, client: Client, tmp_path: Path) -> None:
    folder = stack.new_folder(stack.gateway_url)
    a, data_a = local_file(tmp_path, 2 * MiB + 1, "a.bin")
    b, data_b = local_file(tmp_path, 10, "b.txt")
    upload_file(client, folder, a, "d/a.bin", transport="http")
    upload_file(client, folder, b, "d/sub/b.txt", transport="http", mode=0o640)
    before = stack.requests()
    result, count = download_dir(client, folder, "d", tmp_path / "out", transport="http")
    assert count == 2 and result.size > 0
    assert (tmp_path / "out" / "a.bin").read_bytes() == data_a
    assert (tmp_path / "out" / "sub" / "b.txt").read_bytes() == data_b
    with (tmp_path / "d.zip").open("w+b") as sink:
        zipped = download_archive(client, folder, "", sink, transport="http")
    assert zipped.size == (tmp_path / "d.zip").stat().st_size
    expected: dict[str, float] = {HTTP_DOWNLOAD: 2, GRPC_DOWNLOAD: 0}
    assert stack.grown(before, expected) == expected


def test_upload_resumes_from_the_committed_offset_after_the_proxy_is_killed(
    stack: Stack, client: Client, tmp_path: Path
) -> None:
    folder = stack.new_folder(stack.gateway_url)
    source, data = local_file(tmp_path, 32 * MiB + 99)
    killed = threading.Event()
    seen: list[int] = []

    def kill_midway(done: int, total: int) -> None:
        seen.append(done)
        if done >= 16 * MiB and not killed.is_set():
            killed.set()
            stack.wait_staged(4 * MiB)
            stack.proxy.kill()
            threading.Thread(target=stack.proxy.start).start()

    result = upload_file(
        client, folder, source, "big.bin", transport="http", retry=PATIENT, progress=kill_midway
    )
    assert killed.is_set() and result.attempts > 1
    assert result.sha256 == hashlib.sha256(data).hexdigest()
    # The resumed PUT started where the proxy had committed (>= 4 MiB), not at 0.
    restart = next(i for i in range(1, len(seen)) if seen[i] <= seen[i - 1])
    assert seen[restart] > 4 * MiB
    sink = io.BytesIO()
    download_file(client, folder, "big.bin", sink, transport="http")
    assert sink.getvalue() == data


def test_download_resumes_with_a_range_after_the_proxy_is_killed(
    stack: Stack, client: Client, tmp_path: Path
) -> None:
    folder = stack.new_folder(stack.gateway_url)
    source, data = local_file(tmp_path, 48 * MiB + 5)
    upload_file(client, folder, source, "big.bin", transport="http")
    killed = threading.Event()

    def kill_midway(done: int, total: int) -> None:
        if done >= 4 * MiB and not killed.is_set():
            killed.set()
            stack.proxy.kill()
            threading.Thread(target=stack.proxy.start).start()

    with (tmp_path / "copy.bin").open("wb") as sink:
        result = download_file(
            client, folder, "big.bin", sink, transport="http", retry=PATIENT, progress=kill_midway
        )
    assert killed.is_set() and result.attempts > 1 and result.size == len(data)
    assert (tmp_path / "copy.bin").read_bytes() == data


def test_checksum_mismatch_is_final_and_leaves_no_file(
    stack: Stack, client: Client, tmp_path: Path
) -> None:
    folder = stack.new_folder(stack.gateway_url)
    source, _ = local_file(tmp_path, MiB + 3)
    with pytest.raises(errors.Internal) as mismatch:
        upload_file(client, folder, source, "x.bin", sha256="0" * 64, transport="http", retry=FAST)
    assert mismatch.value.code == grpc.StatusCode.DATA_LOSS
    assert mismatch.value.reason == "CHECKSUM_MISMATCH"
    with pytest.raises(errors.NotFound):
        download_file(client, folder, "x.bin", io.BytesIO(), transport="http")


def test_a_token_for_the_other_operation_is_refused_with_its_reason(
    stack: Stack, client: Client, tmp_path: Path
) -> None:
    folder = stack.new_folder(stack.gateway_url)
    source, _ = local_file(tmp_path, 10)
    upload_file(client, folder, source, "f.bin", transport="http")
    stack.issuer.wrong_op = True
    with pytest.raises(errors.PermissionDenied) as down:
        download_file(client, folder, "f.bin", io.BytesIO(), transport="http", retry=FAST)
    assert down.value.reason == "TRANSFER_SCOPE_VIOLATION" and "upload token" in down.value.message
    with pytest.raises(errors.PermissionDenied) as up:
        upload_file(client, folder, source, "f.bin", transport="http", retry=FAST)
    assert up.value.reason == "TRANSFER_SCOPE_VIOLATION"


def test_an_error_answered_before_the_body_is_read_keeps_its_reason(
    stack: Stack, client: Client, tmp_path: Path
) -> None:
    folder = stack.new_folder(stack.gateway_url)
    source, _ = local_file(tmp_path, 64 * MiB)
    stack.issuer.max_size = MiB
    sent: list[int] = []
    with pytest.raises(errors.PermissionDenied) as over:
        upload_file(
            client,
            folder,
            source,
            "f.bin",
            transport="http",
            retry=FAST,
            progress=lambda d, t: sent.append(d),
        )
    assert over.value.reason == "TRANSFER_SCOPE_VIOLATION" and "max_size" in over.value.message
    assert max(sent, default=0) < 64 * MiB  # cut off: the reply was read after that


def test_a_refused_token_is_replaced_once(stack: Stack, client: Client, tmp_path: Path) -> None:
    folder = stack.new_folder(stack.gateway_url)
    source, data = local_file(tmp_path, MiB + 1)
    stack.issuer.garbage = 1
    result = upload_file(client, folder, source, "f.bin", transport="http", retry=FAST)
    assert result.attempts == 2 and stack.issuer.issued == 2
    stack.issuer.garbage, stack.issuer.issued = 1, 0
    sink = io.BytesIO()
    download_file(client, folder, "f.bin", sink, transport="http", retry=FAST)
    assert sink.getvalue() == data and stack.issuer.issued == 2
    stack.issuer.garbage, stack.issuer.issued = 2, 0  # refused again: final
    with pytest.raises(errors.Unauthenticated) as refused:
        download_file(client, folder, "f.bin", io.BytesIO(), transport="http", retry=FAST)
    assert refused.value.reason == "TRANSFER_TOKEN_INVALID" and stack.issuer.issued == 2


def test_auto_uses_http_through_envoy_and_grpc_elsewhere(
    stack: Stack, client: Client, tmp_path: Path
) -> None:
    source, data = local_file(tmp_path, 2 * MiB + 1)

    over_http = {HTTP_UPLOAD: 1, HTTP_DOWNLOAD: 1, GRPC_UPLOAD: 0, GRPC_DOWNLOAD: 0}
    over_grpc = {HTTP_UPLOAD: 0, HTTP_DOWNLOAD: 0, GRPC_UPLOAD: 1, GRPC_DOWNLOAD: 1}

    def round_trip(address: str, expected: Mapping[str, float], **kw: str) -> dict[str, float]:
        folder = stack.new_folder(address)
        before = stack.requests()
        upload_file(client, folder, source, "f.bin", retry=FAST, **kw)  # type: ignore[arg-type]
        sink = io.BytesIO()
        download_file(client, folder, "f.bin", sink, retry=FAST, **kw)  # type: ignore[arg-type]
        assert sink.getvalue() == data
        return stack.grown(before, expected)

    assert round_trip(stack.gateway_url, over_http) == over_http
    # The proxy's own gRPC port does not speak HTTP/1.1: auto goes on over gRPC.
    assert round_trip(stack.grpc_address, over_grpc) == over_grpc
    assert round_trip(stack.gateway_url, over_grpc, transport="grpc") == over_grpc
    with pytest.raises(errors.Unimplemented):
        upload_file(client, stack.new_folder(stack.grpc_address), source, "g", transport="http")

    # A gateway whose /storage/v1/ route leads nowhere answers 503 itself: gRPC it is.
    listen, admin = free_ports(2)
    (tmp_path / "gw").mkdir()
    bare = GatewayProcess(
        tmp_path / "gw", listen_port=listen, admin_port=admin, storage_port=stack.proxy.client_port
    )
    bare.start()
    try:
        through = f"127.0.0.1:{listen}"
        assert round_trip(through, over_grpc) == over_grpc
    finally:
        bare.stop()


def test_cli_via_picks_the_transport(
    stack: Stack,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    for var in ("BAI_TOKEN", "BAI_PROFILE", "BAI_DEBUG"):
        monkeypatch.delenv(var, raising=False)
    monkeypatch.setenv("BAI_CONFIG_DIR", str(tmp_path / "config"))
    monkeypatch.setenv("BAI_ENDPOINT", stack.fake.address)
    monkeypatch.setenv("BAI_ACCESS_KEY", ACCESS_KEY)
    monkeypatch.setenv("BAI_SECRET_KEY", SECRET_KEY)
    folder = stack.new_folder(stack.gateway_url)
    source, data = local_file(tmp_path, MiB + 17, "m.bin")
    target = tmp_path / "back.bin"

    def bai(expected: Mapping[str, float], *argv: str) -> dict[str, float]:
        before = stack.requests()
        assert main(list(argv)) == 0, capsys.readouterr().err
        return stack.grown(before, expected)

    up_http = {HTTP_UPLOAD: 1, GRPC_UPLOAD: 0}
    assert bai(up_http, "vfolder", "upload", folder, str(source), "--via", "http") == up_http
    up_grpc = {HTTP_UPLOAD: 0, GRPC_UPLOAD: 1}
    assert bai(up_grpc, "vfolder", "upload", folder, str(source), "--via", "grpc") == up_grpc
    down_http = {HTTP_DOWNLOAD: 1, GRPC_DOWNLOAD: 0}
    assert bai(down_http, "vfolder", "download", folder, "m.bin", "-o", str(target)) == down_http
    assert target.read_bytes() == data
    assert main(["vfolder", "download", folder, "m.bin", "--via", "ftp"]) == 2
    assert "invalid choice: 'ftp'" in capsys.readouterr().err
