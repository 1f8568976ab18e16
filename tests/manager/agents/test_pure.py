"""Pure decisions of the agents package: re-adoption, registration status and
seq, canonical names, image labels."""

from __future__ import annotations

import uuid
from decimal import Decimal

import pytest

from bai.common.image_labels import (
    accelerators,
    endpoint_port_names,
    features,
    offered_service_ports,
    readable_resource_bounds,
)
from bai.manager.agents.images import image_type_of, split_canonical
from bai.manager.agents.kernel_updates import KernelReport
from bai.manager.agents.registry import (
    ManagedKernel,
    acked_seq_on_register,
    plan_readoption,
    status_on_register,
)

AGENT = "i-node01"


def managed(status: str, agent_id: str | None = AGENT) -> ManagedKernel:
    return ManagedKernel(uuid.uuid4(), uuid.uuid4(), status, agent_id)


def test_readoption_keeps_listed_live_kernels_and_sorts_out_the_rest() -> None:
    live = managed("RUNNING")
    finished = managed("TERMINATED")
    elsewhere = managed("RUNNING", "i-other")
    missing = managed("CREATING")
    not_dispatched = managed("SCHEDULED")
    stranger = str(uuid.uuid4())
    listed = [
        KernelReport(str(live.kernel_id), "RUNNING"),
        KernelReport(str(live.kernel_id), "RUNNING"),
        KernelReport(str(finished.kernel_id), "RUNNING"),
        KernelReport(str(elsewhere.kernel_id), "RUNNING"),
        KernelReport(stranger, "RUNNING"),
        KernelReport("not-a-uuid", "RUNNING"),
    ]
    known = {m.kernel_id: m for m in (live, finished, elsewhere, missing, not_dispatched)}
    plan = plan_readoption(AGENT, listed, known)
    assert [m for _report, m in plan.adopt] == [live]
    assert plan.unknown == (
        str(finished.kernel_id),
        str(elsewhere.kernel_id),
        stranger,
        "not-a-uuid",
    )
    assert plan.missing == (missing,)


def test_an_agent_with_nothing_listed_and_nothing_known_has_an_empty_plan() -> None:
    plan = plan_readoption(AGENT, [], {})
    assert (plan.adopt, plan.unknown, plan.missing) == ((), (), ())


@pytest.mark.parametrize(
    "stored, new, live, expected",
    [
        (None, "b1", True, "ALIVE"),
        ("b1", "b1", True, "ALIVE"),
        ("b1", "b2", False, "ALIVE"),
        ("b1", "b2", True, "RESTARTING"),
        ("", "b2", True, "ALIVE"),
    ],
)
def test_status_on_register(stored: str | None, new: str, live: bool, expected: str) -> None:
    assert status_on_register(stored, new, live) == expected


def test_acked_seq_counts_per_boot() -> None:
    assert acked_seq_on_register("b1", "b1", 7) == 7
    assert acked_seq_on_register("b1", "b2", 7) == 0
    assert acked_seq_on_register(None, "b1", 0) == 0


@pytest.mark.parametrize(
    "canonical, parts",
    [
        ("cr.backend.ai/stable/python:3.12", ("cr.backend.ai", "stable", "python", "3.12")),
        ("localhost:5000/a/b/c:1", ("localhost:5000", "a/b", "c", "1")),
        ("stable/python", ("", "stable", "python", "latest")),
        ("python:3", ("", "", "python", "3")),
    ],
)
def test_split_canonical(canonical: str, parts: tuple[str, str, str, str]) -> None:
    got = split_canonical(canonical)
    assert (got.registry, got.project, got.name, got.tag) == parts


def test_service_ports_from_labels() -> None:
    labels = {
        "ai.backend.service-ports": (
            "jupyter:http:8080,tb:http:[6006,6007],bad:http:99999,low:tcp:22,junk,dup:http:8080"
        ),
        "ai.backend.endpoint-ports": "jupyter",
    }
    ports = offered_service_ports(labels)
    assert [(p.name, p.protocol, p.container_ports) for p in ports] == [
        ("jupyter", "http", (8080,)),
        ("tb", "http", (6006, 6007)),
        ("ttyd", "http", (7681,)),
    ]
    assert endpoint_port_names(labels) == {"jupyter"}
    own_sshd = offered_service_ports({"ai.backend.service-ports": "sshd:tcp:2222"})
    assert [p.container_ports for p in own_sshd if p.name == "sshd"] == [(2222,)]
    # sshd only when the image says it ships one; the terminal gives way to a taken port.
    with_sshd = offered_service_ports({"ai.backend.features": "query sshd"})
    assert [p.name for p in with_sshd] == ["ttyd", "sshd"]
    taken = offered_service_ports({"ai.backend.service-ports": "web:http:7681"})
    assert [p.name for p in taken] == ["web"]


def test_resource_bounds_accelerators_features_and_type() -> None:
    labels = {
        "ai.backend.resource.min.cpu": "1",
        "ai.backend.resource.min.mem": "256m",
        "ai.backend.resource.max.mem": "1GiB",
        "ai.backend.resource.min.cuda.shares": "0.5",
        "ai.backend.resource.min.bogus": "lots",
        "ai.backend.resource.max.cpu": "-1",
        "ai.backend.accelerators": "cuda, rocm",
        "ai.backend.features": "batch query uid-match",
        "ai.backend.role": "INFERENCE",
    }
    low, high = readable_resource_bounds(labels)
    assert low == {"cpu": 1, "mem": 256 << 20, "cuda.shares": Decimal("0.5")}
    assert high == {"mem": 1 << 30}
    assert accelerators(labels) == ["cuda", "rocm"]
    assert features(labels) == ["batch", "query", "uid-match"]
    assert image_type_of(labels) == "service"
    assert image_type_of({}) == "compute"
