"""The Folders page in headless Chromium, through a real Envoy: grpc-web to a real
manager, and /storage/v1/ to a real storage proxy (in-process, a temp-dir vfs volume)
that the manager issues transfer tokens from. A user creates a folder, uploads files
through the file input (XHR PUT with progress), downloads a file and a directory as a zip
(Chromium saves them to disk), makes and enters a directory, deletes, and sees the
field violation of a bad folder name and the proxy's error for an upload it refuses."""

from __future__ import annotations

import asyncio
import hashlib
import io
import json
import os
import time
import zipfile
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
from sqlalchemy import update

from bai.manager.config import StorageProxyConfig
from bai.manager.db.identity import DomainRow
from bai.storage.main import RunningStorage, start_storage
from tests.manager.callers import Caller, make_caller, make_domain
from tests.manager.fixtures import ManagerHandle, unique
from tests.storage.conftest import MANAGER_TOKEN, VOLUME, storage_config
from tests.web.cdp import Browser
from tests.web.harness import chromium_or_skip, envoy_in_front, require_bundle_and_envoy, text
from tests.web.test_sessions_ui import Page, text_with

pytestmark = pytest.mark.slow

MiB = 1 << 20
HOST_PERMISSIONS = [
    "create-vfolder",
    "modify-vfolder",
    "delete-vfolder",
    "upload-file",
    "download-file",
    "invite-others",
    "set-user-specific-permission",
]


@dataclass
class Storage:
    running: RunningStorage
    host: str  # "<proxy>:<volume>" as the manager names it
    domain: str  # a domain allowed every transfer on `host`


@pytest.fixture(scope="module")
async def storage(
    manager: ManagerHandle, tmp_path_factory: pytest.TempPathFactory
) -> AsyncIterator[Storage]:
    running = await start_storage(storage_config(tmp_path_factory.mktemp("volume")))
    proxy = unique("px")
    manager.ctx.config.storage.proxies[proxy] = StorageProxyConfig(
        manager_address=f"127.0.0.1:{running.manager_port}", secret=MANAGER_TOKEN
    )
    host = f"{proxy}:{VOLUME}"
    domain = await make_domain(manager)
    async with manager.ctx.sessions() as db, db.begin():
        await db.execute(
            update(DomainRow)
            .where(DomainRow.name == domain)
            .values(allowed_vfolder_hosts={host: HOST_PERMISSIONS})
        )
    try:
        yield Storage(running, host, domain)
    finally:
        manager.ctx.config.storage.proxies.pop(proxy, None)
        await running.stop()


@pytest.fixture(scope="module")
def page(
    manager: ManagerHandle, storage: Storage, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[Page]:
    require_bundle_and_envoy()
    chromium = chromium_or_skip()
    tmp = tmp_path_factory.mktemp("web-folders")
    host, port = manager.address.rsplit(":", 1)
    transfers = ("127.0.0.1", storage.running.http_port)
    with envoy_in_front(tmp, (host, int(port)), storage_http_addr=transfers) as envoy_port:
        browser = Browser(chromium, tmp / "profile", height=1600)
        try:
            (tmp / "downloads").mkdir()
            browser.save_downloads_to(tmp / "downloads")
            yield Page(browser, f"http://127.0.0.1:{envoy_port}/ui/", tmp)
        finally:
            browser.close()


async def fresh_user(manager: ManagerHandle, storage: Storage, page: Page) -> Caller:
    """A new user of the storage domain, logged in, on the Folders page."""
    user = await make_caller(manager, "user", storage.domain)
    await page.open()
    await page.js("sessionStorage.clear(); true")
    await page.open("#/folders")
    await page.login(user.email)
    await page.wait(f"document.querySelector('#folder-host option')?.value === {storage.host!r}")
    return user


async def create_folder(page: Page, name: str) -> None:
    await page.js(
        f"document.getElementById('folder-name').value = {json.dumps(name)};"
        "document.getElementById('folder-form').requestSubmit(); true"
    )


def folder_row(name: str) -> str:
    """JS: the text of the folders table row named `name`, or ''."""
    return (
        "([...document.querySelectorAll('#panel-folders tbody tr')]"
        f".find(r => r.cells[0].innerText === {name!r})?.innerText ?? '')"
    )


def file_row(name: str) -> str:
    """JS: the text of the listed directory's row named `name`, or ''."""
    return (
        "([...document.querySelectorAll('#panel-files tbody tr')]"
        f".find(r => r.cells[0].innerText === {name!r})?.innerText ?? '')"
    )


async def open_folder(page: Page, name: str) -> None:
    """Click the folder `name` in the folders table; wait for its root's listing."""
    await page.js(
        "[...document.querySelectorAll('#panel-folders [data-folder-id]')]"
        f".find(b => b.innerText === {name!r}).click(); true"
    )
    await page.wait(
        f"{text('#files-folder')} === {name!r} && !{text_with('#panel-files', 'Loading')}"
    )


def click(selector: str) -> str:
    return f"document.querySelector({json.dumps(selector)}).click(); true"


async def upload(page: Page, *paths: Path) -> list[str]:
    """Choose `paths` in the Upload input; wait until each upload ended; their states."""
    await asyncio.to_thread(page.browser.set_input_files, "#files-upload", list(paths))
    names = json.dumps([p.name for p in paths])
    return list(
        await page.wait(
            f"(() => {{ const rows = {names}.map(n => document.querySelector("
            '`#files-uploads li[data-file="${n}"]`));'
            " const states = rows.map(r => r?.dataset.state);"
            " return states.every(s => s === 'done' || s === 'failed') && states; })()"
        )
    )


async def downloaded(page: Page, name: str, limit: float = 20) -> bytes:
    """The bytes of the download Chromium saved as `name`, once complete."""
    target = page.shots / "downloads" / name
    deadline = time.monotonic() + limit
    while time.monotonic() < deadline:
        partial = list(target.parent.glob("*.crdownload"))
        if target.is_file() and not partial:
            return target.read_bytes()
        await asyncio.sleep(0.1)
    raise AssertionError(f"{name} was not downloaded: {os.listdir(target.parent)}")


def human(n: int) -> str:
    """Sizes as clients/web/src/format.ts writes them."""
    if n >= 1 << 30:
        return f"{float(f'{n / (1 << 30):.2f}'):g} GiB"
    if n >= MiB:
        return f"{float(f'{n / MiB:.1f}'):g} MiB"
    if n >= 1024:
        return f"{float(f'{n / 1024:.1f}'):g} KiB"
    return f"{n} B"


async def test_create_upload_download_browse_and_delete(
    manager: ManagerHandle, storage: Storage, page: Page, tmp_path: Path
) -> None:
    await fresh_user(manager, storage, page)
    await create_folder(page, "web-data")
    assert await page.wait(text("#folder-created")) == "web-data"
    row = await page.wait(folder_row("web-data"))
    cells = row.split("\t")
    assert cells[1:6] == [storage.host, "general", "user", "read-write-delete", "ready"]

    # A click opens the folder's file browser: the root is empty.
    await open_folder(page, "web-data")
    await page.wait(text_with("#panel-files", "Nothing to show."))
    assert await page.js(text("#files-folder")) == "web-data"

    big = tmp_path / "big.bin"
    big.write_bytes(os.urandom(3 * MiB + 12345))
    notes = tmp_path / "notes.txt"
    notes.write_text("hello folders\n")
    assert await upload(page, big, notes) == ["done", "done"]
    big_row = await page.wait(file_row("big.bin"))
    assert big_row.split("\t")[1:3] == ["file", human(big.stat().st_size)]
    assert (await page.wait(file_row("notes.txt"))).split("\t")[1:3] == ["file", "14 B"]
    await page.screenshot("folder-files")

    # Download: the page navigates a same-origin link; Chromium saves what the proxy sends.
    await page.js(click("#panel-files [data-action='download'][data-name='big.bin']"))
    assert await downloaded(page, "big.bin") == big.read_bytes()
    href = await page.js("document.getElementById('files-download').href")
    assert href.startswith(page.url.removesuffix("ui/") + "storage/v1/download?token=")

    # A new directory, entered by a click; an upload there; the breadcrumbs lead back.
    await page.js(
        "document.getElementById('files-mkdir-name').value = 'sub';"
        "document.getElementById('files-mkdir').requestSubmit(); true"
    )
    assert (await page.wait(file_row("sub/"))).split("\t")[1] == "dir"
    await page.js(click("#panel-files [data-dir='sub']"))
    await page.wait(text_with("#panel-files", "Nothing to show."))
    assert await page.js(text("#files-crumbs")) == "web-data / sub"
    inner = tmp_path / "inner.txt"
    inner.write_text("inside sub\n")
    assert await upload(page, inner) == ["done"]
    await page.wait(file_row("inner.txt"))
    await page.js(click("#files-crumbs [data-path='']"))
    await page.wait(file_row("big.bin"))
    assert await page.js("document.getElementById('files-crumbs').dataset.path") == ""

    # A directory downloads as a zip.
    await page.js(click("#panel-files [data-action='zip'][data-name='sub']"))
    with zipfile.ZipFile(io.BytesIO(await downloaded(page, "sub.zip"))) as archive:
        members = {n.rsplit("/", 1)[-1]: archive.read(n) for n in archive.namelist()}
    assert members["inner.txt"] == b"inside sub\n"

    # Delete asks first; a refusal keeps the file, a yes removes it; a directory goes
    # recursively (a background task the page follows).
    await page.js("window.confirm = () => false; true")
    await page.js(click("#panel-files [data-action='delete'][data-name='notes.txt']"))
    assert await page.js(text("#files-message")) == ""
    await page.js("window.confirm = () => true; true")
    await page.js(click("#panel-files [data-action='delete'][data-name='notes.txt']"))
    await page.wait(
        f"{text('#files-deleted')} === 'Deleted notes.txt.' && !{file_row('notes.txt')}"
    )
    await page.js(click("#panel-files [data-action='delete'][data-name='sub']"))
    await page.wait(f"{text('#files-deleted')} === 'Deleted sub.' && !{file_row('sub/')}")
    assert await page.js(file_row("big.bin"))


async def test_a_bad_folder_name_shows_the_field_violation(
    manager: ManagerHandle, storage: Storage, page: Page
) -> None:
    await fresh_user(manager, storage, page)
    await create_folder(page, "no spaces!")
    violation = await page.wait(text("#folder-name-error"))
    assert violation.startswith("must be 1-64 characters")
    assert "INVALID_FIELD" in await page.js(text("#folder-create-result .error"))
    assert await page.js(text("#folder-created")) == ""


async def test_an_upload_the_proxy_refuses_shows_its_error(
    manager: ManagerHandle, storage: Storage, page: Page, tmp_path: Path
) -> None:
    await fresh_user(manager, storage, page)
    await create_folder(page, "web-clash")
    await page.wait(folder_row("web-clash"))
    await open_folder(page, "web-clash")
    await page.js(
        "document.getElementById('files-mkdir-name').value = 'taken';"
        "document.getElementById('files-mkdir').requestSubmit(); true"
    )
    await page.wait(file_row("taken/"))
    # A file named like the directory: the proxy refuses to write over a directory.
    clash = tmp_path / "taken"
    clash.write_bytes(b"not a directory")
    assert await upload(page, clash) == ["failed"]
    error = await page.js(text("#files-uploads li[data-file='taken'] .error"))
    assert error == "PATH_TYPE_MISMATCH (failed_precondition): taken is a directory"
    assert await page.wait(file_row("taken/"))
    await page.screenshot("folder-upload-refused")


def hook_sha256_header(forge: bool) -> str:
    """JS: record the headers uploads set (window.sentHeaders); with `forge`, replace the
    X-Bai-Sha256 value by a wrong one, as corruption on the way would look."""
    return (
        "(() => { const proto = XMLHttpRequest.prototype;"
        " proto.realSetRequestHeader ??= proto.setRequestHeader;"
        " window.sentHeaders = [];"
        " proto.setRequestHeader = function (name, value) {"
        f"   if ({json.dumps(forge)} && name === 'X-Bai-Sha256') value = '0'.repeat(64);"
        "   window.sentHeaders.push([name, value]);"
        "   return this.realSetRequestHeader(name, value); };"
        " return true; })()"
    )


async def test_uploads_are_checksummed_end_to_end(
    manager: ManagerHandle, storage: Storage, page: Page, tmp_path: Path
) -> None:
    await fresh_user(manager, storage, page)
    await create_folder(page, "web-sums")
    await page.wait(folder_row("web-sums"))
    await open_folder(page, "web-sums")
    # A checksum that does not match what arrives: the proxy commits nothing.
    forged = tmp_path / "forged.bin"
    forged.write_bytes(os.urandom(MiB))
    await page.js(hook_sha256_header(forge=True))
    assert await upload(page, forged) == ["failed"]
    error = await page.js(text("#files-uploads li[data-file='forged.bin'] .error"))
    assert error.startswith("CHECKSUM_MISMATCH (data_loss)")
    # The browser hashes the file (in slices: this one takes two) and sends the sum.
    data = tmp_path / "data.bin"
    data.write_bytes(os.urandom(5 * MiB + 3))
    await page.js(hook_sha256_header(forge=False))
    assert await upload(page, data) == ["done"]
    sent = dict(await page.js("window.sentHeaders"))
    assert sent["X-Bai-Sha256"] == hashlib.sha256(data.read_bytes()).hexdigest()
    await page.wait(file_row("data.bin"))
    assert not await page.js(file_row("forged.bin"))
