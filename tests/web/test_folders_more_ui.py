"""The rest of the Folders page, in headless Chromium through a real Envoy, a real manager
and a real storage proxy (the fixtures of test_folders_ui): rename, trash, restore and
purge a folder; invite a user, who accepts in their own login, then unshare and leave;
move a file; and resume an upload whose connection broke halfway."""

from __future__ import annotations

import asyncio
import json
import os
from pathlib import Path

import pytest
from sqlalchemy import select

from bai.manager.db.storage import VFolderRow
from tests.manager.callers import Caller, make_caller
from tests.manager.fixtures import ManagerHandle
from tests.web.harness import text
from tests.web.test_folders_ui import (
    MiB,
    Storage,
    click,
    create_folder,
    downloaded,
    file_row,
    folder_row,
    fresh_user,
    open_folder,
    page,
    storage,
    upload,
)
from tests.web.test_sessions_ui import Page, text_with

__all__ = ["page", "storage"]  # the module-scoped fixtures, shared with test_folders_ui

pytestmark = pytest.mark.slow


def trash_row(name: str) -> str:
    """JS: the text of the Trash table's row named `name`, or ''."""
    return (
        "([...document.querySelectorAll('#panel-trash tbody tr')]"
        f".find(r => r.cells[0].innerText === {name!r})?.innerText ?? '')"
    )


def row_action(panel: str, name: str, action: str) -> str:
    """JS: click the `action` button ([data-<kind>-action]) of `panel`'s row named `name`."""
    kind = {"folders": "folder", "trash": "trash", "invitations": "invitation"}[panel]
    return (
        f"[...document.querySelectorAll('#panel-{panel} tbody tr')]"
        f".find(r => r.cells[0].innerText === {name!r})"
        f".querySelector('[data-{kind}-action={action}]').click(); true"
    )


def answer_dialogs(prompt: str | None = None, confirm: bool = True) -> str:
    return (
        f"window.prompt = () => {json.dumps(prompt)};"
        f"window.confirm = () => {json.dumps(confirm)}; true"
    )


async def log_in_as(page: Page, storage: Storage, user: Caller) -> None:
    await page.open()
    await page.js("sessionStorage.clear(); true")
    await page.open("#/folders")
    await page.login(user.email)
    await page.wait(f"document.querySelector('#folder-host option')?.value === {storage.host!r}")


async def folder_status(manager: ManagerHandle, owner: Caller, name: str) -> list[str]:
    async with manager.ctx.sessions() as db:
        found = await db.scalars(
            select(VFolderRow.status).where(
                VFolderRow.user_id == owner.user_id, VFolderRow.name == name
            )
        )
        return list(found)


async def test_rename_trash_restore_and_purge(
    manager: ManagerHandle, storage: Storage, page: Page
) -> None:
    owner = await fresh_user(manager, storage, page)
    await create_folder(page, "web-keep")
    await page.wait(folder_row("web-keep"))

    # Rename asks for the new name; cancelling the prompt changes nothing.
    await page.js(answer_dialogs(prompt=None))
    await page.js(row_action("folders", "web-keep", "rename"))
    assert await page.js(text("#folder-action-message")) == ""
    await page.js(answer_dialogs(prompt="web-renamed"))
    await page.js(row_action("folders", "web-keep", "rename"))
    await page.wait(f"{folder_row('web-renamed')} && !{folder_row('web-keep')}")
    assert await page.js(text("#folder-action-done")) == "Renamed web-keep to web-renamed."
    assert await folder_status(manager, owner, "web-renamed") == ["ready"]

    # Trash: out of the list, into the Trash panel; Restore brings it back.
    await page.js(row_action("folders", "web-renamed", "trash"))
    row = await page.wait(f"!{folder_row('web-renamed')} && {trash_row('web-renamed')}")
    assert row.split("\t")[1:3] == [storage.host, "delete-pending"]
    assert await folder_status(manager, owner, "web-renamed") == ["delete-pending"]
    await page.screenshot("folder-trash")
    await page.js(row_action("trash", "web-renamed", "restore"))
    await page.wait(f"{folder_row('web-renamed')} && !{trash_row('web-renamed')}")
    assert await page.js(text("#trash-done")) == "Restored web-renamed."
    assert await folder_status(manager, owner, "web-renamed") == ["ready"]

    # Purge asks first; a yes deletes the folder for good.
    await create_folder(page, "web-gone")
    await page.wait(folder_row("web-gone"))
    await page.js(row_action("folders", "web-gone", "trash"))
    await page.wait(trash_row("web-gone"))
    await page.js(answer_dialogs(confirm=False))
    await page.js(row_action("trash", "web-gone", "purge"))
    assert await page.js(text("#trash-done")) == "Restored web-renamed."
    assert await page.js(trash_row("web-gone"))
    assert await folder_status(manager, owner, "web-gone") == ["delete-pending"]
    await page.js(answer_dialogs(confirm=True))
    await page.js(row_action("trash", "web-gone", "purge"))
    await page.wait(f"{text('#trash-done')} === 'Purged web-gone.' && !{trash_row('web-gone')}")
    assert await folder_status(manager, owner, "web-gone") == ["delete-complete"]
    assert await page.js(folder_row("web-renamed"))
    assert not await page.js(folder_row("web-gone"))


async def test_invite_accept_unshare_and_leave(
    manager: ManagerHandle, storage: Storage, page: Page
) -> None:
    invitee = await make_caller(manager, "user", storage.domain)
    owner = await fresh_user(manager, storage, page)
    for name in ("web-shared", "web-left"):
        await create_folder(page, name)
        await page.wait(folder_row(name))
        await page.js(row_action("folders", name, "share"))
        await page.wait(f"{text('#sharing-folder')} === {name!r} && {text('#share-users')}")
        assert await page.js(text("#share-users")) == "Not shared with anyone."
        await page.js(
            f"document.getElementById('share-email').value = {invitee.email!r};"
            "document.getElementById('share-permission').value = '2';"  # READ_WRITE
            "document.getElementById('share-form').requestSubmit(); true"
        )
        done = await page.wait(text("#share-done"))
        assert done == f"Invited {invitee.email} (read-write)."
        invited = await page.wait(text_with("#share-invited", invitee.email))
        assert "read-write" in invited
    await page.screenshot("folder-sharing")

    # The invitee sees both invitations, accepts them, and leaves one folder.
    await log_in_as(page, storage, invitee)
    row = await page.wait(
        "([...document.querySelectorAll('#panel-invitations tbody tr')]"
        ".find(r => r.cells[0].innerText === 'web-shared')?.innerText ?? '')"
    )
    assert row.split("\t")[1:3] == [owner.email, "read-write"]
    assert not await page.js(folder_row("web-shared"))
    for name in ("web-shared", "web-left"):
        await page.js(row_action("invitations", name, "accept"))
        await page.wait(f"{text('#invitation-done')} === 'Accepted {name}.' && {folder_row(name)}")
    cells = (await page.js(folder_row("web-shared"))).split("\t")
    assert cells[3:5] == ["user", "read-write"]
    assert "Nothing to show." in await page.js(text("#panel-invitations"))
    await page.screenshot("folder-invitation-accepted")
    leave_only = (
        "[...document.querySelectorAll('#panel-folders tbody tr')]"
        ".find(r => r.cells[0].innerText === 'web-shared')"
        ".querySelectorAll('[data-folder-action]')"
    )
    assert await page.js(f"[...{leave_only}].map(b => b.dataset.folderAction)") == ["leave"]
    await page.js(answer_dialogs(confirm=True))
    await page.js(row_action("folders", "web-left", "leave"))
    await page.wait(
        f"{text('#folder-action-done')} === 'Left web-left.' && !{folder_row('web-left')}"
    )

    # The owner sees who has the folder now, and unshares it.
    await log_in_as(page, storage, owner)
    await page.js(row_action("folders", "web-left", "share"))
    await page.wait(f"{text('#sharing-folder')} === 'web-left' && {text('#share-users')}")
    assert await page.js(text("#share-users")) == "Not shared with anyone."
    await page.js(row_action("folders", "web-shared", "share"))
    shared = await page.wait(text_with("#share-users", invitee.email))
    assert shared.split("\n")[-1].split("\t")[:2] == [invitee.email, "read-write"]
    assert await page.js(text("#share-invited")) == "None."
    await page.js(
        f"document.querySelector('#share-users [data-share-id={json.dumps(invitee.email)}]')"
        ".click(); true"
    )
    await page.wait(f"{text('#share-users')} === 'Not shared with anyone.'")
    assert await page.js(text("#share-done")) == f"Unshared with {invitee.email}."

    await log_in_as(page, storage, invitee)
    await page.wait(text_with("#panel-folders", "Nothing to show."))


async def test_move_a_file_and_a_directory(
    manager: ManagerHandle, storage: Storage, page: Page, tmp_path: Path
) -> None:
    await fresh_user(manager, storage, page)
    await create_folder(page, "web-move")
    await page.wait(folder_row("web-move"))
    await open_folder(page, "web-move")
    notes = tmp_path / "notes.txt"
    notes.write_text("moving\n")
    assert await upload(page, notes) == ["done"]
    await page.js(
        "document.getElementById('files-mkdir-name').value = 'sub';"
        "document.getElementById('files-mkdir').requestSubmit(); true"
    )
    await page.wait(file_row("sub/"))

    await page.js(answer_dialogs(prompt="sub/renamed.txt"))
    await page.js(click("#panel-files [data-action='move'][data-name='notes.txt']"))
    await page.wait(f"{text('#files-moved')} && !{file_row('notes.txt')}")
    assert await page.js(text("#files-moved")) == "Moved notes.txt to sub/renamed.txt."
    await page.js(answer_dialogs(prompt="box"))
    await page.js(click("#panel-files [data-action='move'][data-name='sub']"))
    await page.wait(f"{file_row('box/')} && !{file_row('sub/')}")
    await page.js(click("#panel-files [data-dir='box']"))
    assert (await page.wait(file_row("renamed.txt"))).split("\t")[1:3] == ["file", "7 B"]

    # A move onto an existing file is refused (no overwrite) and the error shown.
    assert await upload(page, notes) == ["done"]
    await page.wait(file_row("notes.txt"))
    await page.js(answer_dialogs(prompt="box/renamed.txt"))
    await page.js(click("#panel-files [data-action='move'][data-name='notes.txt']"))
    error = await page.wait(text("#files-message .error"))
    assert error.startswith("ALREADY_EXISTS (already_exists)")
    assert await page.js(file_row("notes.txt"))


def drop_transfer_connections(storage: Storage) -> int:
    """Close the storage proxy's open HTTP connections, as a network fault between the
    gateway and the proxy would; how many there were."""
    runner = storage.running.http_server._runner  # no public handle on live connections
    assert runner is not None and runner.server is not None
    connections = runner.server.connections
    for handler in connections:
        if handler.transport is not None:
            handler.transport.abort()
    return len(connections)


@pytest.mark.parametrize("cut", ["cancel", "proxy-drop", "token-refused"])
async def test_an_upload_cut_halfway_resumes_from_what_arrived(
    manager: ManagerHandle, storage: Storage, page: Page, tmp_path: Path, cut: str
) -> None:
    """The upload breaks a third of the way: the user cancels it (the XHR aborts), or the
    proxy's connection drops (the gateway answers 503). Resume asks the proxy how much it
    kept and sends only the rest; the stored file is the whole one. With token-refused the
    proxy's signing secret changes before Resume, so the old token gets 401 and the page
    must ask the manager for a fresh one."""
    await fresh_user(manager, storage, page)
    folder = f"web-resume-{cut}"
    await create_folder(page, folder)
    await page.wait(folder_row(folder))
    await open_folder(page, folder)
    big = tmp_path / f"big-{cut}.bin"  # all cases download into one directory
    size = 6 * MiB + 4321
    big.write_bytes(os.urandom(size))
    row = f"#files-uploads li[data-file='{big.name}']"

    # Slow the upload down (DevTools throttling) so that it is cut halfway.
    await asyncio.to_thread(page.browser.emulate_network, upload_bytes_per_s=2 * MiB)
    try:
        await asyncio.to_thread(page.browser.set_input_files, "#files-upload", [big])
        await page.wait(f'document.querySelector("{row} progress")?.value > {2 * MiB}')
        if cut == "proxy-drop":
            assert drop_transfer_connections(storage) >= 1
        else:
            await page.js(click(f"{row} .cancel"))
        await page.wait(f"document.querySelector(\"{row}\").dataset.state === 'failed'")
    finally:
        await asyncio.to_thread(page.browser.emulate_network)
    error = await page.js(text(f"{row} .error"))
    if cut == "proxy-drop":
        assert error.startswith(("http_503", "unavailable")), error
    else:
        assert error == "cancelled: the upload was cancelled"
    assert await page.js(f'!document.querySelector("{row} .resume").hidden')
    await page.screenshot(f"folder-upload-{cut}")

    context = storage.running.ctx
    secret = context.jwt_secret
    if cut == "token-refused":
        context.jwt_secret = f"{secret}-rotated"  # the tokens issued so far no longer verify
    try:
        await page.js(click(f"{row} .resume"))
        await page.wait(f"document.querySelector(\"{row}\").dataset.state === 'done'")
    finally:
        context.jwt_secret = secret
    resumed_from = int(await page.js(f'document.querySelector("{row}").dataset.resumedFrom'))
    assert 0 < resumed_from < size
    await page.wait(file_row(big.name))
    await page.js(click(f"#panel-files [data-action='download'][data-name='{big.name}']"))
    assert await downloaded(page, big.name) == big.read_bytes()
