"""Cloning a folder and a project folder's member permissions on the Folders page, in
headless Chromium through a real Envoy, a real manager and a real storage proxy (the
fixtures of test_folders_ui)."""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest

from bai.api.common.v1 import storage_pb2
from bai.api.manager.v1 import vfolder_pb2 as pb
from bai.api.manager.v1 import vfolder_pb2_grpc as pb_grpc
from tests.manager.callers import invoke, make_caller, make_project
from tests.manager.fixtures import ManagerHandle
from tests.web.harness import text
from tests.web.test_folders_more_ui import answer_dialogs, log_in_as, row_action
from tests.web.test_folders_ui import (
    MiB,
    Storage,
    create_folder,
    file_row,
    folder_row,
    fresh_user,
    human,
    open_folder,
    page,
    storage,
    upload,
)
from tests.web.test_sessions_ui import Page, text_with

__all__ = ["page", "storage"]  # the module-scoped fixtures, shared with test_folders_ui

pytestmark = pytest.mark.slow


async def test_clone_a_folder_with_its_files(
    manager: ManagerHandle, storage: Storage, page: Page, tmp_path: Path
) -> None:
    await fresh_user(manager, storage, page)
    await create_folder(page, "web-original")
    await page.wait(folder_row("web-original"))
    await open_folder(page, "web-original")
    data = tmp_path / "weights.bin"
    data.write_bytes(os.urandom(2 * MiB + 7))
    assert await upload(page, data) == ["done"]
    await page.wait(file_row("weights.bin"))

    await page.js(answer_dialogs(prompt="web-copy"))
    await page.js(row_action("folders", "web-original", "clone"))
    done = await page.wait(text("#folder-action-done"))
    assert done == "Cloned web-original to web-copy."
    cells = (await page.wait(folder_row("web-copy"))).split("\t")
    assert cells[1] == storage.host and cells[5] == "ready"
    await open_folder(page, "web-copy")
    row = await page.wait(file_row("weights.bin"))
    assert row.split("\t")[1:3] == ["file", human(data.stat().st_size)]
    await page.screenshot("folder-cloned")

    # A name already taken: the manager's refusal shows, nothing new is listed.
    await page.js(answer_dialogs(prompt="web-copy"))
    await page.js(row_action("folders", "web-original", "clone"))
    error = await page.wait(text("#folder-action-message .error"))
    assert error.startswith("ALREADY_EXISTS")


async def test_member_permissions_of_a_project_folder(
    manager: ManagerHandle, storage: Storage, page: Page
) -> None:
    project = await make_project(manager, storage.domain)
    admin = await make_caller(manager, "admin", storage.domain, projects=(project,))
    member = await make_caller(manager, "user", storage.domain, projects=(project,))
    async with manager.channel() as channel:
        await invoke(
            channel,
            pb_grpc.VFolderServiceStub,
            admin,
            "CreateVFolder",
            pb.CreateVFolderRequest(
                name="web-team",
                host=storage.host,
                project_id=str(project),
                permission=storage_pb2.MOUNT_PERMISSION_READ_WRITE,
            ),
        )
    await log_in_as(page, storage, admin)
    await page.wait(folder_row("web-team"))
    await page.js(row_action("folders", "web-team", "share"))
    await page.wait(f"{text('#sharing-folder')} === 'web-team' && {text('#share-users')}")
    assert await page.js("document.getElementById('folder-sharing').dataset.mode") == "project"
    assert await page.js(text("#share-users")) == "No member has a permission of their own."
    assert await page.js("document.getElementById('share-pending').hidden")
    await page.js(
        f"document.getElementById('share-email').value = {member.email!r};"
        "document.getElementById('share-permission').value = '1';"  # READ_ONLY
        "document.getElementById('share-form').requestSubmit(); true"
    )
    assert await page.wait(text("#share-done")) == f"{member.email} now has read-only."
    listed = await page.wait(text_with("#share-users", member.email))
    assert listed.split("\n")[-1].split("\t")[:2] == [member.email, "read-only"]
    await page.screenshot("folder-project-permissions")

    # The member sees the folder read-only; once the override goes, the folder's own
    # permission (read-write) again.
    await log_in_as(page, storage, member)
    assert (await page.wait(folder_row("web-team"))).split("\t")[3:5] == ["project", "read-only"]
    await log_in_as(page, storage, admin)
    await page.js(row_action("folders", "web-team", "share"))
    await page.wait(text_with("#share-users", member.email))
    await page.js(
        f"document.querySelector('#share-users [data-share-id={json.dumps(member.email)}]')"
        ".click(); true"
    )
    await page.wait(f"{text('#share-users')} === 'No member has a permission of their own.'")
    await log_in_as(page, storage, member)
    assert (await page.wait(folder_row("web-team"))).split("\t")[3:5] == ["project", "read-write"]
