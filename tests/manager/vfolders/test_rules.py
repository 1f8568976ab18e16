"""The pure decisions: who sees a folder with what permission, host permissions,
folder-relative paths and mount points."""

from __future__ import annotations

import uuid

import pytest

from bai.common.errors import PermissionDenied
from bai.manager.auth.principal import Principal, Role
from bai.manager.validation import Violations
from bai.manager.vfolders import paths
from bai.manager.vfolders.mounts import kernel_path
from bai.manager.vfolders.permissions import (
    FolderAccess,
    FolderFacts,
    Perm,
    access_of,
    merge_host_permissions,
    narrowed,
    require_host_permission,
)

OWNER, OTHER, PROJECT = uuid.uuid4(), uuid.uuid4(), uuid.uuid4()


def who(
    role: Role = Role.USER, user: uuid.UUID = OTHER, domain: str = "d1", member: bool = False
) -> Principal:
    return Principal(
        user, "u", "u@x.io", role, domain, project_ids=frozenset({PROJECT} if member else ())
    )


USER_FOLDER = FolderFacts("user", OWNER, None, "d1", "wd")
PROJECT_FOLDER = FolderFacts("group", None, PROJECT, "d1", "ro")


@pytest.mark.parametrize(
    ("caller", "folder", "share", "expected"),
    [
        (who(user=OWNER), USER_FOLDER, None, FolderAccess(Perm.WD, True, True)),
        (who(), USER_FOLDER, "ro", FolderAccess(Perm.RO, False, False)),
        (who(), USER_FOLDER, "rw", FolderAccess(Perm.RW, False, False)),
        (who(), USER_FOLDER, None, None),
        (who(member=True), USER_FOLDER, None, None),
        (who(Role.ADMIN), USER_FOLDER, None, FolderAccess(Perm.WD, False, True)),
        (who(Role.ADMIN, domain="d2"), USER_FOLDER, None, None),
        (who(Role.MONITOR), USER_FOLDER, None, FolderAccess(Perm.RO, False, False)),
        (who(Role.MONITOR, domain="d2"), USER_FOLDER, None, None),
        (who(Role.SUPERADMIN, domain="d9"), USER_FOLDER, None, FolderAccess(Perm.WD, False, True)),
        (who(member=True), PROJECT_FOLDER, None, FolderAccess(Perm.RO, False, False)),
        (who(member=True), PROJECT_FOLDER, "rw", FolderAccess(Perm.RW, False, False)),
        (who(), PROJECT_FOLDER, "rw", None),  # a stale share outlives membership: no access
        (who(Role.ADMIN), PROJECT_FOLDER, None, FolderAccess(Perm.WD, True, True)),
        (
            who(Role.ADMIN, domain="d2", member=True),
            PROJECT_FOLDER,
            None,
            FolderAccess(Perm.RO, False, False),
        ),
    ],
)
def test_access_of(
    caller: Principal, folder: FolderFacts, share: str | None, expected: FolderAccess | None
) -> None:
    assert access_of(caller, folder, share) == expected


def test_narrowing_never_widens() -> None:
    assert narrowed(Perm.RW, None) is Perm.RW
    assert narrowed(Perm.RW, Perm.RO) is Perm.RO
    with pytest.raises(PermissionDenied):
        narrowed(Perm.RO, Perm.RW)


def test_host_permissions_unite_sources() -> None:
    allowed = merge_host_permissions(
        [{"p:v1": ["create-vfolder"]}, {"p:v1": ["upload-file"], "p:v2": ["download-file"]}, {}]
    )
    assert allowed == {
        "p:v1": frozenset({"create-vfolder", "upload-file"}),
        "p:v2": frozenset({"download-file"}),
    }
    require_host_permission(allowed, "p:v1", "upload-file")
    with pytest.raises(PermissionDenied) as info:
        require_host_permission(allowed, "p:v2", "upload-file")
    assert info.value.reason == "HOST_PERMISSION_DENIED"
    assert info.value.metadata == {"host": "p:v2", "permission": "upload-file"}


@pytest.mark.parametrize("good", ["a", "a/b.txt", "dir/", ".hidden/x", "ü/名前", "a" * 255])
def test_relative_paths_accepted(good: str) -> None:
    v = Violations()
    paths.relpath(v, "path", good, root_ok=False)
    assert v.items == []


@pytest.mark.parametrize(
    "bad",
    ["", "/abs", "../x", "a/..", "a/./b", "a//b", "a\\b", "a\x00b", "a\nb", "x" * 256, "a/" * 2049],
)
def test_relative_paths_refused(bad: str) -> None:
    v = Violations()
    paths.relpath(v, "path", bad, root_ok=False)
    assert [i.field for i in v.items] == ["path"]


@pytest.mark.parametrize(
    ("requested", "expected"),
    [
        ("", "/home/work/data"),
        ("sub/dir", "/home/work/sub/dir"),
        ("/home/work/x/", "/home/work/x"),
        ("/data/models", "/data/models"),
        ("/etc", ""),
        ("/usr/local", ""),
        ("/home/work", ""),
        ("/", ""),
        (".ssh", ""),
        ("../x", ""),
    ],
)
def test_kernel_paths(requested: str, expected: str) -> None:
    v = Violations()
    assert kernel_path(v, "mount_path", requested, "data") == expected
    assert bool(v.items) == (expected == "")
