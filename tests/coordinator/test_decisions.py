"""The pure pieces: slot choice, route weights, client addresses, token binding, redirects."""

from __future__ import annotations

import uuid

import pytest

from bai.common.errors import ResourceExhausted
from bai.coordinator.authz.decision import client_allowed, query_token, token_problem, without_token
from bai.coordinator.placement import choose_slot, subdomain_for
from bai.coordinator.records import Circuit, Route, Worker
from bai.coordinator.tokens import AppTokenClaims
from bai.coordinator.xds.resources import RenderSettings, circuit_cluster, worker_resources

SETTINGS = RenderSettings("127.0.0.1", 1.0, 2, 1.0, b"k" * 32)


def worker(authority: str, mode: str = "port", status: str = "alive", **kw: object) -> Worker:
    return Worker(authority=authority, frontend_mode=mode, hostname="h", status=status, **kw)  # type: ignore[arg-type]


def circuit(w: str = "a:1", port: int | None = None, **kw: object) -> Circuit:
    fields: dict[str, object] = dict(
        id=uuid.uuid4(),
        request_id="r",
        app="app",
        protocol="http",
        app_mode="interactive",
        frontend_mode="port",
        worker=w,
        port=port,
        routes=(Route("k", "127.0.0.1", 8000),),
    )
    fields.update(kw)
    return Circuit(**fields)  # type: ignore[arg-type]


def test_slot_goes_to_the_alive_worker_with_most_room_and_first_free_port() -> None:
    busy = worker("a:1", port_start=100, port_end=102)
    roomy = worker("b:1", port_start=200, port_end=203)
    dead = worker("c:1", status="lost", port_start=300, port_end=399)
    taken = [circuit("b:1", 200), circuit("b:1", 202)]
    slot = choose_slot([busy, roomy, dead], taken, None, False, "app", uuid.uuid4())
    assert (slot.worker.authority, slot.port) == ("a:1", 100)
    slot = choose_slot([roomy], taken, "port", False, "app", uuid.uuid4())
    assert slot.port == 201


@pytest.mark.parametrize(
    ("mode", "tcp", "workers"),
    [
        ("wildcard", False, [worker("a:1", port_start=1, port_end=5)]),
        (None, True, [worker("w:1", "wildcard", wildcard_domain="d", available_slots=5)]),
        (None, False, [worker("a:1", port_start=7, port_end=7)]),
    ],
)
def test_no_fitting_slot_is_no_capacity(mode: str | None, tcp: bool, workers: list[Worker]) -> None:
    full = [circuit("a:1", 7)]
    with pytest.raises(ResourceExhausted) as caught:
        choose_slot(workers, full, mode, tcp, "app", uuid.uuid4())
    assert caught.value.reason == "NO_CAPACITY"


def test_subdomains_are_dns_labels() -> None:
    cid = uuid.UUID(int=0xABC)
    assert subdomain_for("Jupyter Lab!", cid) == f"jupyter-lab-{cid.hex[:12]}"
    assert subdomain_for("***", cid).startswith("app-")


def test_weights_follow_ratios_and_zero_means_none_unless_all_zero() -> None:
    def weights(*ratios: float) -> list[int]:
        routes = tuple(
            Route(f"r{i}", "127.0.0.1", 8000 + i, traffic_ratio=r) for i, r in enumerate(ratios)
        )
        cluster = circuit_cluster(circuit(routes=routes), SETTINGS)
        lb = cluster["load_assignment"]["endpoints"][0]["lb_endpoints"]
        return [e["load_balancing_weight"] for e in lb]

    assert weights(0, 0) == [1, 1]
    assert weights(0.25, 0.75) == [250, 750]
    assert weights(0, 1) == [1000]


def test_tcp_circuits_get_a_tcp_proxy_and_ip_rbac() -> None:
    w = worker("a:1", port_start=5, port_end=6)
    c = circuit(protocol="tcp", port=5, allowed_client_ips=("10.0.0.0/8",))
    listeners, clusters = worker_resources(w, [c], SETTINGS)
    names = [f["name"] for f in listeners[0]["filter_chains"][0]["filters"]]
    assert names == ["envoy.filters.network.rbac", "envoy.filters.network.tcp_proxy"]
    assert "tcp_health_check" in clusters[0]["health_checks"][0]


def test_rendering_is_stable() -> None:
    w = worker("a:1", port_start=5, port_end=9)
    cs = [circuit(port=5 + i) for i in range(3)]
    assert worker_resources(w, cs, SETTINGS) == worker_resources(w, list(reversed(cs)), SETTINGS)


@pytest.mark.parametrize(
    ("allowed", "peer", "ok"),
    [
        ((), "203.0.113.9", True),
        (("203.0.113.0/24",), "203.0.113.9", True),
        (("203.0.113.0/24",), "198.51.100.1", False),
        (("::1",), "::1", True),
        (("10.0.0.1",), "not-an-address", False),
    ],
)
def test_client_addresses(allowed: tuple[str, ...], peer: str, ok: bool) -> None:
    assert client_allowed(circuit(allowed_client_ips=allowed), peer) is ok


def test_token_binding() -> None:
    c = circuit(user_id="alice")
    good = AppTokenClaims(str(c.id), "alice", "j", 0)
    assert token_problem(c, good) is None
    assert token_problem(c, AppTokenClaims(str(uuid.uuid4()), "alice", "j", 0))
    assert token_problem(c, AppTokenClaims(str(c.id), "bob", "j", 0))


def test_redirect_strips_only_the_token() -> None:
    assert query_token("/a?x=1&token=T") == "T"
    assert without_token("/a/b?x=1&token=T&y=2") == "/a/b?x=1&y=2"
    assert without_token("/?token=T") == "/"
