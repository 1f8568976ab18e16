"""`bai image ...` against the fake ImageService: tables, --json, the requests each
command sends, background tasks, error lines and exit codes."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from bai.api.manager.v1 import image_pb2
from tests.cli.conftest import Result, keypair_env, run_bai
from tests.cli.fake_image_service import Catalogue, image_server

PYTHON = "cr.backend.ai/stable/python:3.12-ubuntu22.04"
PYTORCH = "cr.backend.ai/stable/pytorch:2.3-cuda12"
SFTP = "cr.backend.ai/system/sftp:1.0"
MYBOX = "bai.local/customized/u-1/mybox:20261127"


@dataclass
class IBai:
    """Runs ``bai`` in-process against the fake image catalogue."""

    catalogue: Catalogue
    capsys: pytest.CaptureFixture[str]

    def __call__(self, *argv: str) -> Result:
        return run_bai(self.capsys, list(argv))

    def requests(self, method: str) -> list[Any]:
        return [c.request for c in self.catalogue.fake.calls_to(method)]

    def image(self, canonical: str, architecture: str = "x86_64") -> image_pb2.Image:
        return next(
            i
            for i in self.catalogue.images.values()
            if (i.canonical, i.architecture) == (canonical, architecture)
        )


@pytest.fixture
def ibai(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> Iterator[IBai]:
    keypair_env(monkeypatch, tmp_path / "config")
    with image_server() as catalogue:
        monkeypatch.setenv("BAI_ENDPOINT", catalogue.fake.address)
        yield IBai(catalogue, capsys)


def test_help_names_every_command(ibai: IBai) -> None:
    assert "list and inspect images; alias, forget" in ibai("--help").out
    r = ibai("image", "--help")
    assert r.code == 0
    for command in ("ls", "info", "alias", "dealias", "forget", "rescan", "pull"):
        assert command in r.out
        sub = ibai("image", command, "--help")
        assert sub.code == 0 and "usage: bai image " + command in sub.out


def test_ls_table(ibai: IBai) -> None:
    r = ibai("image", "ls")
    assert r.code == 0, r.err
    header, *rows = [line.split() for line in r.out.splitlines()]
    assert header == ["ID", "CANONICAL", "ARCH", "SIZE", "TYPE", "ALIASES", "NOTES"]
    assert [(row[1], row[2]) for row in rows] == [
        (MYBOX, "x86_64"),
        (PYTHON, "aarch64"),
        (PYTHON, "x86_64"),
        (PYTORCH, "x86_64"),
        (SFTP, "x86_64"),
    ]
    by_name = {(row[1], row[2]): row for row in rows}
    assert by_name[PYTHON, "x86_64"][3:] == ["1.5g", "compute", "python", "-"]
    assert by_name[PYTHON, "x86_64"][0] == ibai.image(PYTHON).id
    assert by_name[MYBOX, "x86_64"][6] == "local,customized"
    assert by_name[SFTP, "x86_64"][3:5] == ["50m", "system"]
    (request,) = ibai.requests("ListImages")
    assert request == image_pb2.ListImagesRequest()


def test_ls_json_and_paging(ibai: IBai) -> None:
    listed = ibai("image", "ls", "--json", "--page-size", "2").json()
    assert [i["canonical"] for i in listed][:2] == [MYBOX, PYTHON]
    assert len(listed) == 5 and listed[1]["size_bytes"] == "1503238553"
    assert listed[1]["architecture"] == "aarch64" and listed[1]["aliases"] == ["python"]
    assert len(ibai.requests("ListImages")) == 3
    limited = ibai("image", "ls", "--json", "--limit", "1").json()
    assert [i["canonical"] for i in limited] == [MYBOX]


def test_ls_filters_reach_the_request(ibai: IBai) -> None:
    r = ibai(
        "image", "ls", "--customized", "--registry", "cr.backend.ai", "--name", "py",
        "--arch", "aarch64", "--type", "compute", "--scaling-group", "default", "--deleted",
    )  # fmt: skip
    assert r.code == 0, r.err
    (request,) = ibai.requests("ListImages")
    assert request == image_pb2.ListImagesRequest(
        customized_only=True,
        registry="cr.backend.ai",
        name_contains="py",
        architecture="aarch64",
        type=image_pb2.IMAGE_TYPE_COMPUTE,
        installed_in_scaling_group="default",
        include_deleted=True,
    )
    r = ibai("image", "ls", "--registry", "cr.backend.ai", "--name", "py", "--arch", "aarch64")
    assert [line.split()[1] for line in r.out.splitlines()[1:]] == [PYTHON]


def test_ls_installed_adds_agent_counts(ibai: IBai) -> None:
    r = ibai("image", "ls", "--installed")
    assert r.code == 0, r.err
    header, *rows = [line.split() for line in r.out.splitlines()]
    assert header[-1] == "AGENTS"
    assert [(row[1], row[-1]) for row in rows] == [(PYTHON, "2"), (PYTORCH, "1")]
    (request,) = ibai.requests("ListImages")
    assert request.include_installed_agents
    listed = ibai("image", "ls", "--installed", "--json").json()
    assert listed[0]["installed_agent_ids"] == ["i-ag1", "i-ag2"]


def test_info_by_reference_and_by_id(ibai: IBai) -> None:
    python = ibai.image(PYTHON)
    r = ibai("image", "info", "python")
    assert r.code == 0, r.err
    rows = dict(line.split(None, 1) for line in r.out.splitlines() if line and " " in line)
    assert rows["id"] == python.id and rows["canonical"] == PYTHON
    assert rows["digest"] == python.digest
    assert rows["size"] == "1.5g (1610612736 bytes)"
    assert rows["features"] == "batch, query, uid-match" and rows["aliases"] == "python"
    assert rows["agents"] == "i-ag1, i-ag2" and rows["owner"] == "-"
    assert rows["created_at"] == "2023-11-14T22:13:20Z"
    lines = r.out.splitlines()
    assert lines[lines.index("SERVICE  PROTOCOL  PORTS  INFERENCE") + 1].split() == [
        "jupyter",
        "http",
        "8080",
        "no",
    ]
    assert "sshd     tcp       2200" in r.out
    assert "SLOT  MIN   MAX" in r.out and "mem   256m  16g" in r.out and "cpu   1     -" in r.out
    assert "ai.backend.features          batch query uid-match" in r.out
    (request,) = ibai.requests("GetImage")
    assert request == image_pb2.GetImageRequest(reference="python")

    arm = ibai.image(PYTHON, "aarch64")
    data = ibai("image", "info", arm.id, "--json").json()
    assert data["id"] == arm.id and data["architecture"] == "aarch64"
    assert ibai.requests("GetImage")[-1] == image_pb2.GetImageRequest(image_id=arm.id)
    assert ibai("image", "info", "python", "--arch", "aarch64", "--json").json()["id"] == arm.id
    customized = ibai("image", "info", MYBOX).out
    assert "owner         u-1" in customized and "local         yes" in customized


def test_unknown_image_gives_error_line_and_exit_code(ibai: IBai) -> None:
    r = ibai("image", "info", "nothing:1")
    assert r.code == 4 and r.out == ""
    assert r.err == "error: NOT_FOUND (IMAGE_NOT_FOUND): image nothing:1 (x86_64) not found\n"
    r = ibai("image", "info", "python", "--arch", "riscv")
    assert r.code == 2 and "invalid choice" in r.err
    r = ibai("image", "forget", "00000000-0000-0000-0000-000000000000")
    assert r.code == 4 and "IMAGE_NOT_FOUND" in r.err


def test_alias_and_dealias(ibai: IBai) -> None:
    pytorch = ibai.image(PYTORCH)
    r = ibai("image", "alias", "torch", "pytorch:2.3-cuda12")
    assert r.code == 0, r.err
    assert r.out == f"alias torch -> {PYTORCH} (x86_64, {pytorch.id})\n"
    assert ibai.requests("AliasImage") == [
        image_pb2.AliasImageRequest(alias="torch", image_id=pytorch.id)
    ]
    assert ibai("image", "alias", "torch", pytorch.id, "--json").json()["aliases"] == ["torch"]
    r = ibai("image", "alias", "torch", "python")
    assert r.code == 5 and "ALREADY_EXISTS" in r.err and PYTORCH in r.err
    r = ibai("image", "alias", "bad alias!", "python")
    assert r.code == 2 and "alias: must be 1-128 characters" in r.err

    r = ibai("image", "dealias", "torch")
    assert (r.code, r.out) == (0, "removed alias torch\n")
    assert ibai.requests("DealiasImage") == [image_pb2.DealiasImageRequest(alias="torch")]
    assert list(ibai.image(PYTORCH).aliases) == []
    r = ibai("image", "dealias", "torch", "--json")
    assert r.code == 4 and "alias torch not found" in r.err


def test_forget(ibai: IBai) -> None:
    sftp = ibai.image(SFTP)
    r = ibai("image", "forget", "system/sftp:1.0")
    assert r.code == 0, r.err
    assert r.out == f"forgot image {SFTP} (x86_64, {sftp.id})\n"
    assert ibai.requests("ForgetImage") == [image_pb2.ForgetImageRequest(image_id=sftp.id)]
    assert ibai.image(SFTP).status == image_pb2.IMAGE_STATUS_DELETED
    assert SFTP not in ibai("image", "ls").out
    assert "deleted" in ibai("image", "ls", "--deleted", "--name", "sftp").out

    mybox = ibai.image(MYBOX)
    r = ibai("image", "rm", mybox.id, "--remove-from-agents")
    assert r.code == 0, r.err
    assert r.out.endswith("and removed it from the agents\n")
    assert f"removing {MYBOX} from agents: 1/2" in r.err
    assert ibai.requests("ForgetImage")[-1].remove_from_agents


def test_rescan_within_the_call_and_as_a_task(ibai: IBai) -> None:
    r = ibai("image", "rescan", "--registry", "cr.backend.ai", "--project", "stable")
    assert (r.code, r.out, r.err) == (0, "rescanned registry cr.backend.ai project stable\n", "")
    assert ibai.requests("RescanImages") == [
        image_pb2.RescanImagesRequest(registry="cr.backend.ai", project="stable")
    ]
    assert ibai("image", "rescan").out == "rescanned every registry\n"
    assert ibai("image", "rescan", "--json").json() == {"task_id": ""}
    r = ibai("image", "rescan", "--registry", "nowhere.example")
    assert r.code == 4 and "REFERENCE_NOT_FOUND" in r.err

    ibai.catalogue.as_tasks = True
    r = ibai("image", "rescan", "--registry", "cr.backend.ai")
    assert r.code == 0, r.err
    assert r.out == "rescanned registry cr.backend.ai\n"
    assert (
        r.err == "rescanning registry cr.backend.ai: 1/2\nrescanning registry cr.backend.ai: 2/2\n"
    )
    (watch,) = ibai.requests("WatchTask")
    assert watch.task_id in ibai.catalogue.tasks
    r = ibai("image", "rescan", "--no-wait")
    assert r.code == 0 and r.out.startswith("rescanning every registry; task ")
    assert len(ibai.requests("WatchTask")) == 1
    r = ibai("image", "rescan", "--registry", "broken.example")
    error = r.err.splitlines()[-1]
    assert r.code == 1 and error.startswith("error: INTERNAL (RESCAN_FAILED): rescanning registry")
    assert "broken.example failed" in error and "registry refused the credentials" in error


def test_pull(ibai: IBai) -> None:
    python = ibai.image(PYTHON, "aarch64")
    r = ibai(
        "image", "pull", "python", "--arch", "aarch64", "--agent", "i-ag1", "--agent", "i-ag2",
        "--scaling-group", "default", "--force",
    )  # fmt: skip
    assert r.code == 0, r.err
    assert r.out.startswith(f"started pulling {PYTHON} (aarch64) on i-ag1, i-ag2 of scaling")
    assert ibai.requests("PullImage") == [
        image_pb2.PullImageRequest(
            image_id=python.id, agent_ids=["i-ag1", "i-ag2"], scaling_group="default", force=True
        )
    ]
    r = ibai("image", "pull", "python", "--agent", "i-nope")
    assert r.code == 4 and "REFERENCE_NOT_FOUND" in r.err and "i-nope" in r.err
    r = ibai("image", "pull", "missing:1")
    assert r.code == 4 and "IMAGE_NOT_FOUND" in r.err
    assert len(ibai.requests("PullImage")) == 2

    ibai.catalogue.as_tasks = True
    r = ibai("image", "pull", PYTORCH, "--json")
    assert r.code == 0, r.err
    assert r.json()["status"] == "BACKGROUND_TASK_STATUS_DONE" and r.err == ""
