"""Mount specs of CreateKernels: defaults, refusals with the field that is wrong, the
host check, and the bind mounts a valid spec becomes."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import pytest

from bai.agent.kernels.mounts import (
    check_mounts,
    grant_write,
    kernel_mounts,
    missing_source,
)
from bai.agent.runtime.base import BindMount
from bai.api.agent.v1 import agent_pb2
from bai.api.common.v1 import session_pb2, storage_pb2

MP = storage_pb2.MountPermission
RO, RW, WD = (
    MP.MOUNT_PERMISSION_READ_ONLY,
    MP.MOUNT_PERMISSION_READ_WRITE,
    MP.MOUNT_PERMISSION_READ_WRITE_DELETE,
)


def vfolder(name: str = "data", host_path: str = "/srv/v/data", **fields: Any) -> Any:
    fields.setdefault("permission", RW)
    return session_pb2.VFolderMount(name=name, host_path=host_path, **fields)


def extra(source: str, target: str, permission: int = RO, **fields: Any) -> Any:
    return session_pb2.Mount(source=source, target=target, permission=permission, **fields)


def config(*vfolders: Any, extras: tuple[Any, ...] = ()) -> agent_pb2.KernelCreationConfig:
    return agent_pb2.KernelCreationConfig(
        kernel_id="k", vfolder_mounts=vfolders, extra_mounts=extras
    )


def problems(cfg: agent_pb2.KernelCreationConfig) -> dict[str, str]:
    return {v.field: v.description for v in check_mounts(cfg, "kernels[0]")}


def test_valid_specs_become_bind_mounts_with_their_defaults() -> None:
    cfg = config(
        vfolder("data", permission=RW),
        vfolder("inputs", "/srv/v/in", kernel_path="/mnt/inputs", permission=RO),
        vfolder("models", "/srv/v/m/sub", kernel_path="models/v1", subpath="sub", permission=WD),
        extras=(extra("/srv/cache", "/cache/x/", RW),),
    )
    assert problems(cfg) == {}
    assert kernel_mounts(cfg) == [
        BindMount(Path("/srv/v/data"), "/home/work/data", read_only=False),
        BindMount(Path("/srv/v/in"), "/mnt/inputs", read_only=True),
        BindMount(Path("/srv/v/m/sub"), "/home/work/models/v1", read_only=False),
        BindMount(Path("/srv/cache"), "/cache/x", read_only=False),
    ]


@pytest.mark.parametrize(
    ("mount", "field", "words"),
    [
        (vfolder(host_path="srv/v"), "host_path", "not absolute"),
        (vfolder(host_path="/srv/../etc"), "host_path", "'..'"),
        (vfolder(kernel_path="../escape"), "kernel_path", "'..'"),
        (vfolder(kernel_path="/home/work/a/../../x"), "kernel_path", "'..'"),
        (vfolder(name=""), "name", "plain folder name"),
        (vfolder(name="a/b"), "name", "plain folder name"),
        (vfolder(subpath="/abs"), "subpath", "relative"),
        (vfolder(subpath="a/../../b"), "subpath", "'..'"),
        (vfolder(permission=MP.MOUNT_PERMISSION_UNSPECIFIED), "permission", "ro, rw or wd"),
        (vfolder(kernel_path="/home/work"), "kernel_path", "would hide /home/work"),
        (vfolder(kernel_path="/home"), "kernel_path", "would hide /home/work"),
        (vfolder(kernel_path="/"), "kernel_path", "would hide"),
        (vfolder(kernel_path="/opt/bai/runner"), "kernel_path", "would hide /opt/bai/runner"),
        (vfolder(kernel_path="/opt"), "kernel_path", "would hide /opt/bai/runner"),
        (vfolder(kernel_path="/proc/x"), "kernel_path", "inside /proc"),
        (vfolder(kernel_path="/dev"), "kernel_path", "inside /dev"),
        (vfolder(kernel_path="/sys/fs"), "kernel_path", "inside /sys"),
        (vfolder(kernel_path="/usr/local"), "kernel_path", "inside /usr"),
        (vfolder(host_path="/srv/a\0b"), "host_path", "NUL"),
    ],
)
def test_bad_vfolder_specs_name_the_field(mount: Any, field: str, words: str) -> None:
    found = problems(config(mount))
    assert list(found) == [f"kernels[0].vfolder_mounts[0].{field}"]
    assert words in found[f"kernels[0].vfolder_mounts[0].{field}"]


def test_bad_extra_mounts_name_the_field() -> None:
    found = problems(
        config(
            extras=(
                extra("relative", "/x"),
                extra("/srv", "/y", type=session_pb2.MOUNT_TYPE_TMPFS),
                extra("/srv", "/z", MP.MOUNT_PERMISSION_UNSPECIFIED),
                extra("/srv", "/etc/passwd"),
            )
        )
    )
    assert found == {
        "kernels[0].extra_mounts[0].source": "'relative' is not absolute",
        "kernels[0].extra_mounts[1].type": "only bind mounts are supported",
        "kernels[0].extra_mounts[2].permission": "must be READ_ONLY or READ_WRITE",
        "kernels[0].extra_mounts[3].target": "/etc/passwd is inside /etc, which is reserved",
    }


def test_colliding_and_nested_targets_are_refused() -> None:
    cfg = config(
        vfolder("data"),
        vfolder("other", kernel_path="/home/work/data"),
        vfolder("inner", kernel_path="data/inner"),
    )
    found = [(v.field, v.description) for v in check_mounts(cfg, "kernels[0]")]
    first, second, third = (f"kernels[0].vfolder_mounts[{i}].kernel_path" for i in range(3))
    assert found == [
        (second, f"/home/work/data is also {first}"),
        (third, f"/home/work/data/inner nests with {first}"),
        (third, f"/home/work/data/inner nests with {second}"),
    ]


def test_the_host_check_names_the_missing_source(tmp_path: Path) -> None:
    present = tmp_path / "present"
    present.mkdir()
    a_file = tmp_path / "file"
    a_file.write_text("x")
    assert missing_source(config(vfolder(host_path=str(present)))) is None
    gone = missing_source(config(vfolder(host_path=str(tmp_path / "gone"))))
    assert gone is not None and gone.reason == "KERNEL_CREATION_FAILED"
    assert gone.metadata["kernel_id"] == "k"
    assert f"{tmp_path / 'gone'} (for /home/work/data) does not exist" in gone.message
    not_dir = missing_source(config(vfolder(host_path=str(a_file))))
    assert not_dir is not None and "is not a directory" in not_dir.message


@pytest.mark.skipif(os.geteuid() != 0, reason="handing a directory to uid 1000 needs root")
def test_writable_roots_go_to_the_kernel_user_read_only_ones_do_not(tmp_path: Path) -> None:
    rw, ro, open_dir = tmp_path / "rw", tmp_path / "ro", tmp_path / "open"
    for path in (rw, ro, open_dir):
        path.mkdir(mode=0o755)
    open_dir.chmod(0o777)
    grant_write(
        [BindMount(rw, "/a"), BindMount(ro, "/b", read_only=True), BindMount(open_dir, "/c")],
        1000,
        1000,
    )
    assert (rw.stat().st_uid, rw.stat().st_gid) == (1000, 1000)
    assert ro.stat().st_uid == 0 and open_dir.stat().st_uid == 0
