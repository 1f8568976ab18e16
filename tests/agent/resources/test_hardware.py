"""Host facts for HardwareInfo, from a fake root and from this host."""

from __future__ import annotations

import os
import socket
from pathlib import Path

import pytest

from bai.agent.resources.hardware import (
    architecture_name,
    gather_host_facts,
    parse_cpu_list,
    read_cpu_model,
    read_mem_total,
    read_os_name,
)


def fake_root(tmp_path: Path, cpuinfo: str) -> Path:
    (tmp_path / "etc").mkdir()
    (tmp_path / "proc").mkdir()
    (tmp_path / "etc/os-release").write_text(
        'NAME="Debian GNU/Linux"\n# comment\nPRETTY_NAME="Debian GNU/Linux 13 (trixie)"\n'
    )
    (tmp_path / "proc/meminfo").write_text("MemTotal:       16318912 kB\nMemFree: 1 kB\n")
    (tmp_path / "proc/cpuinfo").write_text(cpuinfo)
    return tmp_path


def test_facts_from_a_fake_root(tmp_path: Path) -> None:
    root = fake_root(tmp_path, "processor\t: 0\nmodel name\t: AMD EPYC 9654 96-Core Processor\n")
    facts = gather_host_facts(root)
    assert facts.os == "Debian GNU/Linux 13 (trixie)"
    assert facts.cpu_model == "AMD EPYC 9654 96-Core Processor"
    assert facts.memory_bytes == 16318912 * 1024
    assert facts.hostname == socket.gethostname()
    assert facts.kernel_version == os.uname().release


def test_arm_cpuinfo_without_model_name_falls_back(tmp_path: Path) -> None:
    root = fake_root(tmp_path, "processor\t: 0\nBogoMIPS\t: 50.00\nHardware\t: Graviton\n")
    assert read_cpu_model(root) == "Graviton"


def test_missing_files_give_empty_facts(tmp_path: Path) -> None:
    assert read_os_name(tmp_path) == ""
    assert read_mem_total(tmp_path) == 0


@pytest.mark.parametrize(
    ("machine", "name"),
    [("x86_64", "x86_64"), ("AMD64", "x86_64"), ("aarch64", "aarch64"), ("arm64", "aarch64")],
)
def test_architecture_uses_backend_ai_names(machine: str, name: str) -> None:
    assert architecture_name(machine) == name


def test_this_host() -> None:
    facts = gather_host_facts()
    assert facts.architecture in ("x86_64", "aarch64")
    assert facts.cpu_cores >= len(os.sched_getaffinity(0))
    assert facts.memory_bytes > 0
    assert facts.os


@pytest.mark.parametrize(
    ("text", "cores"),
    [("0", [0]), ("0-3", [0, 1, 2, 3]), ("0-1,4, 6-7", [0, 1, 4, 6, 7]), ("3,1,3", [1, 3])],
)
def test_cpu_lists_read_like_cpuset_cpus(text: str, cores: list[int]) -> None:
    assert parse_cpu_list(text) == cores


@pytest.mark.parametrize("text", ["", "a", "3-1", "1-", "-2", "1,,2"])
def test_malformed_cpu_lists_are_refused(text: str) -> None:
    with pytest.raises(ValueError):
        parse_cpu_list(text)
