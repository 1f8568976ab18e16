"""`bai vfolder` folder and sharing commands against the fake VFolderService: each
command's happy path, one error path each, --json output and exit codes."""

from __future__ import annotations

import pytest

from bai.api.manager.v1 import vfolder_pb2
from tests.cli.fake_vfolder_cli import VBai, vbai
from tests.cli.fake_vfolder_state import invite_from_bob

__all__ = ["vbai"]

COMMANDS = (
    "create ls info rm restore purge rename update-options clone hosts invite invitations "
    "accept reject cancel leave share unshare mkdir files mv rm-file upload download"
).split()


def test_help_names_every_command(vbai: VBai) -> None:
    assert "virtual folders: create, share" in vbai("--help").out
    r = vbai("vfolder", "--help")
    assert r.code == 0
    for command in COMMANDS:
        assert command in r.out
        sub = vbai("vfolder", command, "--help")
        assert sub.code == 0 and "usage: bai vfolder " + command in sub.out


def test_create_and_list(vbai: VBai) -> None:
    r = vbai("vfolder", "create", "data", "--usage-mode", "model", "--cloneable")
    assert r.code == 0, r.err
    created = vbai.backend.state.folders
    (folder,) = created.values()
    assert r.out == f"created vfolder data ({folder.id}) on local:volume1\n"
    assert (folder.usage_mode, folder.cloneable) == (2, True)
    assert vbai("vfolder", "create", "other", "local:volume1").code == 0

    r = vbai("vfolder", "ls")
    lines = r.out.splitlines()
    assert lines[0].split()[:4] == ["NAME", "ID", "HOST", "OWNERSHIP"]
    assert [line.split()[0] for line in lines[1:]] == ["data", "other"]
    assert "read-write-delete" in lines[1] and "model" in lines[1]
    listed = vbai("vfolder", "ls", "--json").json()
    assert [f["name"] for f in listed] == ["data", "other"]
    assert listed[0]["is_owner"] is True


def test_create_errors(vbai: VBai) -> None:
    r = vbai("vfolder", "create", "bad name!")
    assert r.code == 2 and "name: must be 1-64 characters" in r.err
    assert vbai("vfolder", "create", "data").code == 0
    r = vbai("vfolder", "create", "data")
    assert r.code == 5 and "ALREADY_EXISTS" in r.err
    r = vbai("vfolder", "create", "x", "nfs:far")
    assert r.code == 4 and "REFERENCE_NOT_FOUND" in r.err


def test_info_shows_usage_and_shares(vbai: VBai) -> None:
    folder = vbai.backend.state.add("data")
    vbai.file(folder.id, "a.bin").write_bytes(b"x" * 100)
    vbai.backend.state.shares[folder.id] = {"alice@example.com": 1}
    r = vbai("vfolder", "info", "data")
    assert r.code == 0, r.err
    rows = dict(line.split(None, 1) for line in r.out.splitlines() if line and " " in line)
    assert rows["id"] == folder.id and rows["files"] == "1" and rows["used_bytes"] == "100"
    assert "alice@example.com  read-only" in r.out
    data = vbai("vfolder", "info", folder.id, "--json").json()
    assert data["vfolder"]["name"] == "data" and data["usage"]["file_count"] == "1"
    r = vbai("vfolder", "info", "nothing")
    assert r.code == 4 and "no vfolder named 'nothing'" in r.err


def test_trash_restore_and_purge(vbai: VBai) -> None:
    folder = vbai.backend.state.add("data")
    r = vbai("vfolder", "rm", "data")
    assert r.code == 0 and "moved vfolder data" in r.out and "to the trash" in r.out
    assert vbai("vfolder", "ls", "--json").json() == []
    assert [f["name"] for f in vbai("vfolder", "ls", "--trash", "--json").json()] == ["data"]
    r = vbai("vfolder", "restore", "data")
    assert r.code == 0 and r.out.endswith(": ready\n")

    r = vbai("vfolder", "purge", "data")
    assert r.code == 4 and "no vfolder named 'data' in the trash" in r.err
    r = vbai("vfolder", "purge", folder.id)
    assert r.code == 5 and "INVALID_STATE" in r.err
    assert vbai("vfolder", "rm", folder.id).code == 0
    r = vbai("vfolder", "purge", "data")
    assert r.code == 0 and r.out.endswith(": delete-complete\n")
    assert not vbai.backend.storage.folder(folder.id).exists()


def test_rm_of_a_mounted_folder_is_refused(vbai: VBai) -> None:
    vbai.backend.state.add("busy", mounted_by_session_ids=["s-1"])
    r = vbai("vfolder", "rm", "busy")
    assert r.code == 5 and "IN_USE" in r.err


def test_rename_and_update_options(vbai: VBai) -> None:
    folder = vbai.backend.state.add("data")
    vbai.backend.state.add("taken")
    r = vbai("vfolder", "rename", "data", "renamed")
    assert r.code == 0 and r.out == f"updated vfolder renamed ({folder.id}): name\n"
    r = vbai("vfolder", "rename", "renamed", "taken")
    assert r.code == 5 and "ALREADY_EXISTS" in r.err
    r = vbai("vfolder", "update-options", "renamed", "--cloneable", "--usage-mode", "data")
    assert r.code == 0 and r.out.endswith(": cloneable, usage_mode\n")
    assert vbai.backend.state.folders[folder.id].cloneable
    r = vbai("vfolder", "update-options", "renamed")
    assert r.code == 2 and "nothing to update" in r.err


def test_clone_waits_for_the_copy(vbai: VBai) -> None:
    source = vbai.backend.state.add("data")
    vbai.file(source.id, "weights.bin").write_bytes(b"w" * 10)
    r = vbai("vfolder", "clone", "data", "copy")
    assert r.code == 0, r.err
    assert "cloning into copy: 1/2" in r.err and "cloning into copy: 2/2" in r.err
    copy = next(f for f in vbai.backend.state.folders.values() if f.name == "copy")
    assert r.out == f"cloned into vfolder copy ({copy.id}): ready\n"
    assert vbai.file(copy.id, "weights.bin").read_bytes() == b"w" * 10

    r = vbai("vfolder", "clone", "data", "fail-copy")
    assert r.code == 1 and "cloning into fail-copy failed: volume went away" in r.err
    r = vbai("vfolder", "clone", "data", "later", "--no-wait", "--json")
    assert r.code == 0 and r.json()["vfolder"]["status"] == "FOLDER_STATUS_CLONING"


def test_clone_of_a_shared_folder_needs_it_cloneable(vbai: VBai) -> None:
    invitation = invite_from_bob(vbai.backend.state)
    assert vbai("vfolder", "accept", invitation.id).code == 0
    r = vbai("vfolder", "clone", "bobs-data", "mine")
    assert r.code == 4 and "NOT_CLONEABLE" in r.err


def test_hosts(vbai: VBai) -> None:
    r = vbai("vfolder", "hosts")
    assert r.code == 0
    assert r.out.splitlines()[1].split()[:4] == ["local:volume1", "(default)", "vfs", "vfolder"]
    assert vbai("vfolder", "list-hosts", "--json").json()["default_host"] == "local:volume1"


def test_invite_and_the_invitee_side(vbai: VBai) -> None:
    vbai.backend.state.add("data")
    r = vbai("vfolder", "invite", "data", "alice@example.com", "-p", "ro")
    assert r.code == 0, r.err
    assert r.out.startswith("invited alice@example.com to data (read-only): invitation ")
    r = vbai("vfolder", "invite", "data", "nobody@example.com")
    assert r.code == 4 and "REFERENCE_NOT_FOUND" in r.err
    sent = vbai("vfolder", "invitations", "--sent", "--json").json()
    assert [i["invitee_email"] for i in sent] == ["alice@example.com"]
    r = vbai("vfolder", "cancel", sent[0]["id"])
    assert r.code == 0 and r.out == f"withdrew invitation {sent[0]['id']} to data\n"
    assert vbai("vfolder", "invitations", "--sent", "--json").json() == []
    assert vbai("vfolder", "cancel", sent[0]["id"]).code == 0  # idempotent

    invitation = invite_from_bob(vbai.backend.state)
    r = vbai("vfolder", "invitations")
    assert r.code == 0 and invitation.id in r.out and "bob@example.com" in r.out
    assert "bobs-data" not in vbai("vfolder", "ls").out
    r = vbai("vfolder", "accept", invitation.id)
    assert r.code == 0 and r.out == f"accepted invitation {invitation.id} to bobs-data\n"
    shared = [f for f in vbai("vfolder", "ls", "--json").json() if f["name"] == "bobs-data"]
    assert shared[0]["caller_permission"] == "MOUNT_PERMISSION_READ_ONLY"
    r = vbai("vfolder", "reject", invitation.id)
    assert r.code == 5 and "INVALID_STATE" in r.err
    accepted = vbai("vfolder", "invitations", "--status", "accepted", "--json").json()
    assert [i["id"] for i in accepted] == [invitation.id]
    r = vbai("vfolder", "invitations", "--status", "maybe")
    assert r.code == 2 and "unknown maybe" in r.err

    assert vbai("vfolder", "leave", "bobs-data").code == 0
    assert "bobs-data" not in vbai("vfolder", "ls").out
    r = vbai("vfolder", "leave", "data")
    assert r.code == 5 and "INVALID_STATE" in r.err


def test_reject_an_invitation(vbai: VBai) -> None:
    invitation = invite_from_bob(vbai.backend.state)
    r = vbai("vfolder", "reject", invitation.id, "--json")
    assert r.code == 0 and r.json()["status"] == "FOLDER_INVITATION_STATUS_REJECTED"
    assert vbai("vfolder", "accept", "no-such-invitation").code == 4


def test_share_and_unshare(vbai: VBai) -> None:
    folder = vbai.backend.state.add("team")
    r = vbai("vfolder", "share", "team", "alice@example.com", "bob@example.com", "--perm", "wd")
    assert r.code == 0, r.err
    assert r.out.splitlines() == [
        "shared team with alice@example.com (read-write-delete)",
        "shared team with bob@example.com (read-write-delete)",
    ]
    r = vbai("vfolder", "unshare", "team", "bob@example.com")
    assert r.code == 0 and r.out == "unshared team from bob@example.com\n"
    assert vbai.backend.state.shares[folder.id] == {"alice@example.com": 3}
    r = vbai("vfolder", "share", "team", "who@example.com")
    assert r.code == 4 and "REFERENCE_NOT_FOUND" in r.err
    r = vbai("vfolder", "share", "team", "alice@example.com", "-p", "all")
    assert r.code == 2


@pytest.mark.parametrize("ref", ["data", "ID"])
def test_folders_are_named_by_name_or_id(vbai: VBai, ref: str) -> None:
    folder = vbai.backend.state.add("data")
    r = vbai("vfolder", "info", folder.id if ref == "ID" else ref, "--json")
    assert r.code == 0 and r.json()["vfolder"]["id"] == folder.id
    calls = [c.method for c in vbai.backend.fake.calls]
    assert ("ListVFolders" in calls) == (ref != "ID")


def test_a_name_shared_and_owned_prefers_your_own(vbai: VBai) -> None:
    mine = vbai.backend.state.add("bobs-data")
    invitation = invite_from_bob(vbai.backend.state)
    assert vbai("vfolder", "accept", invitation.id).code == 0
    assert vbai("vfolder", "info", "bobs-data", "--json").json()["vfolder"]["id"] == mine.id
    status = vbai.backend.state.folders[mine.id].status
    assert status == vfolder_pb2.FOLDER_STATUS_READY
