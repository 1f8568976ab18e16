"""ai.backend.* image labels: table-driven, including malformed ones."""

from __future__ import annotations

import pytest

from bai.common.image_labels import (
    ImageLabels,
    LabelError,
    ServicePort,
    kernel_service_ports,
    parse_image_labels,
    parse_service_ports,
    parse_size,
)


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        ("", ()),
        ("jupyter:http:8080", (ServicePort("jupyter", "http", (8080,)),)),
        (
            "jupyter:http:8080,vscode:http:8180",
            (ServicePort("jupyter", "http", (8080,)), ServicePort("vscode", "http", (8180,))),
        ),
        ("multi:tcp:[5000,5001]", (ServicePort("multi", "tcp", (5000, 5001)),)),
        (
            "a:preopen:[3000, 3001], b:vnc:5900 ,c:rdp:3389",
            (
                ServicePort("a", "preopen", (3000, 3001)),
                ServicePort("b", "vnc", (5900,)),
                ServicePort("c", "rdp", (3389,)),
            ),
        ),
    ],
)
def test_service_ports_parse(value: str, expected: tuple[ServicePort, ...]) -> None:
    assert parse_service_ports(value) == expected


@pytest.mark.parametrize(
    ("value", "problem"),
    [
        ("jupyter:http:80", "outside 1025-65535"),
        ("jupyter:http:1024", "outside 1025-65535"),
        ("x:tcp:70000", "outside 1025-65535"),
        ("runner:tcp:2001", "reserved"),
        ("runner:tcp:[2003,4000]", "reserved"),
        ("jupyter:ftp:8080", "unknown protocol"),
        ("jupyter:pty:8080", "unknown protocol"),
        ("jupyter:http", "is not name:protocol:port"),
        ("jupyter:http:abc", "is not name:protocol:port"),
        ("jupyter:http:[]", "no port"),
        ("a:http:8080,b:tcp:8080", "used twice"),
        ("a:http:8080,a:tcp:8081", "declared twice"),
        ("bad name:http:8080", "is not name:protocol:port"),
    ],
)
def test_service_ports_reject_malformed(value: str, problem: str) -> None:
    with pytest.raises(LabelError, match=problem) as caught:
        parse_service_ports(value)
    assert caught.value.label == "ai.backend.service-ports"
    assert isinstance(caught.value, ValueError)


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        ("256m", 256 * 1024**2),
        ("1g", 1024**3),
        ("1G", 1024**3),
        ("1.5g", 3 * 1024**3 // 2),
        ("64MiB", 64 * 1024**2),
        ("512k", 512 * 1024),
        ("1048576", 1048576),
        ("2t", 2 * 1024**4),
    ],
)
def test_parse_size(value: str, expected: int) -> None:
    assert parse_size(value) == expected


@pytest.mark.parametrize("value", ["", "m", "1x", "-1g", "one gig"])
def test_parse_size_rejects(value: str) -> None:
    with pytest.raises(ValueError):
        parse_size(value)


def test_full_label_set() -> None:
    labels = {
        "ai.backend.kernelspec": "1",
        "ai.backend.features": "query batch uid-match",
        "ai.backend.service-ports": "jupyter:http:8080,tgi:http:[3000]",
        "ai.backend.endpoint-ports": "tgi",
        "ai.backend.accelerators": "cuda, rocm",
        "ai.backend.resource.min.cpu": "1",
        "ai.backend.resource.min.mem": "256m",
        "ai.backend.resource.max.mem": "4g",
        "ai.backend.resource.min.cuda.shares": "0.50",
        "ai.backend.resource.min.cuda.mem": "1g",
        "ai.backend.base-distro": "ubuntu22.04",
        "ai.backend.runtime-type": "python",
        "ai.backend.runtime-path": "/usr/bin/python3",
        "unrelated": "ignored",
    }
    parsed = parse_image_labels(labels)
    assert parsed == ImageLabels(
        kernelspec=1,
        features=frozenset({"query", "batch", "uid-match"}),
        service_ports=(
            ServicePort("jupyter", "http", (8080,)),
            ServicePort("tgi", "http", (3000,)),
        ),
        endpoint_ports=("tgi",),
        accelerators=("cuda", "rocm"),
        min_slots={
            "cpu": "1",
            "cuda.mem": "1073741824",
            "cuda.shares": "0.5",
            "mem": "268435456",
        },
        max_slots={"mem": "4294967296"},
        base_distro="ubuntu22.04",
        runtime_type="python",
        runtime_path="/usr/bin/python3",
    )


def test_no_labels_is_a_plain_image() -> None:
    assert parse_image_labels({}) == ImageLabels()


@pytest.mark.parametrize(
    ("labels", "label", "problem"),
    [
        ({"ai.backend.kernelspec": "two"}, "ai.backend.kernelspec", "not an integer"),
        ({"ai.backend.kernelspec": "0"}, "ai.backend.kernelspec", "not a version"),
        ({"ai.backend.resource.min.mem": "lots"}, "ai.backend.resource.min.mem", "not an amount"),
        ({"ai.backend.resource.min.cpu": "abc"}, "ai.backend.resource.min.cpu", "not an amount"),
        ({"ai.backend.resource.max.cpu": "-1"}, "ai.backend.resource.max.cpu", "not an amount"),
        ({"ai.backend.resource.min.cpu": "NaN"}, "ai.backend.resource.min.cpu", "not an amount"),
        ({"ai.backend.resource.min.": "1"}, "ai.backend.resource.min.", "no slot name"),
        (
            {"ai.backend.service-ports": "a:http:8080", "ai.backend.endpoint-ports": "b"},
            "ai.backend.endpoint-ports",
            "not one of the service ports",
        ),
    ],
)
def test_malformed_labels(labels: dict[str, str], label: str, problem: str) -> None:
    with pytest.raises(LabelError, match=problem) as caught:
        parse_image_labels(labels)
    assert caught.value.label == label


@pytest.mark.parametrize(
    ("labels", "expected_names"),
    [
        ({}, ["ttyd"]),
        ({"ai.backend.features": "query sshd"}, ["ttyd", "sshd"]),
        ({"ai.backend.service-ports": "jupyter:http:8080"}, ["jupyter", "ttyd"]),
        # An image that declares its own ttyd keeps it; the intrinsic one is not added twice.
        ({"ai.backend.service-ports": "ttyd:http:7681"}, ["ttyd"]),
        ({"ai.backend.service-ports": "term:http:7681"}, ["term"]),
    ],
)
def test_intrinsic_ports(labels: dict[str, str], expected_names: list[str]) -> None:
    ports = kernel_service_ports(parse_image_labels(labels))
    assert [port.name for port in ports] == expected_names
    by_name = {port.name: port for port in ports}
    if "sshd" in by_name:
        assert by_name["sshd"] == ServicePort("sshd", "tcp", (2200,))
    if "ttyd" in by_name:
        assert by_name["ttyd"] == ServicePort("ttyd", "http", (7681,))
