"""`bai vfolder` (the installed command) against the real manager and a real storage
proxy: a folder's life from create to purge, files in and out, errors as exit codes."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from bai.storage.testing import ProxyProcess
from tests.e2e.storage_proxy import storage_proxy
from tests.e2e.test_cli import bai
from tests.manager.fixtures import ManagerHandle, unique


@pytest.fixture
async def proxy(manager: ManagerHandle) -> AsyncIterator[ProxyProcess]:
    async with storage_proxy(manager) as running:
        yield running


async def test_a_folder_from_create_to_purge(
    manager: ManagerHandle, proxy: ProxyProcess, tmp_path: Path
) -> None:
    config = tmp_path / "config"
    name = unique("cli")

    async def ok(*argv: str) -> str:
        code, out, err = await bai(manager, config, "vfolder", *argv)
        assert code == 0, (argv, out, err)
        return out

    await ok("create", name)
    local = tmp_path / "data"
    (local / "sub").mkdir(parents=True)
    (local / "a.txt").write_text("alpha\n")
    (local / "sub" / "b.txt").write_text("beta\n")
    await ok("upload", name, str(local / "a.txt"), str(local / "sub"), "--to", "in")
    await ok("mkdir", name, "out/deep", "-p")
    await ok("mv", name, "in/a.txt", "out/a.txt")
    listed = json.loads(await ok("files", name, "out", "--json"))["entries"]
    assert {entry["name"] for entry in listed} == {"a.txt", "deep"}

    target = tmp_path / "back.txt"
    await ok("download", name, "out/a.txt", "-o", str(target))
    assert target.read_text() == "alpha\n"
    unpacked = tmp_path / "unpacked"
    await ok("download", name, "in", "-b", str(unpacked))
    assert (unpacked / "in" / "sub" / "b.txt").read_text() == "beta\n"

    await ok("rm-file", name, "out/a.txt")
    code, _, err = await bai(manager, config, "vfolder", "download", name, "out/a.txt", "-o", "-")
    assert code == 4, err  # NOT_FOUND
    code, _, err = await bai(manager, config, "vfolder", "files", name, "../escape")
    assert code == 2, err  # INVALID_FIELD
    code, _, err = await bai(manager, config, "vfolder", "create", name)
    assert code == 5, err  # ALREADY_EXISTS

    await ok("rm", name)
    trashed = json.loads(await ok("ls", "--trash", "--json"))
    assert name in {f["name"] for f in trashed}
    await ok("restore", name)
    await ok("rm", name)
    await ok("purge", name)
    remaining = json.loads(await ok("ls", "--trash", "--json"))
    assert name not in {f["name"] for f in remaining}
