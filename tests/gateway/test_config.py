"""Rendering the gateway config: Envoy accepts it, the checked-in copy is current."""

from __future__ import annotations

import json
import subprocess
from pathlib import Path

import pytest
from google.protobuf import descriptor_pb2

from bai.gateway import (
    envoy_binary,
    gateway_config,
    gateway_process_argv,
    render_default_config,
    render_gateway_config,
    services_in_descriptor,
)
from bai.gateway.yaml_out import dump

from .conftest import DESCRIPTOR, REPO


def envoy_validate(config: Path, cwd: Path | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [str(envoy_binary()), "--mode", "validate", "-c", str(config), "--disable-hot-restart"],
        capture_output=True,
        text=True,
        timeout=60,
        cwd=cwd,
    )


def test_envoy_validates_rendered_config(tmp_path: Path) -> None:
    config = tmp_path / "gateway.yaml"
    config.write_text(
        render_gateway_config(
            descriptor_path=DESCRIPTOR, services=services_in_descriptor(DESCRIPTOR)
        )
    )
    proc = envoy_validate(config)
    assert proc.returncode == 0, proc.stdout + proc.stderr


def test_envoy_validates_config_with_web_root_and_dns(tmp_path: Path) -> None:
    web = tmp_path / "web"
    web.mkdir()
    (web / "index.html").write_text("<!doctype html>")
    (web / "big.js").write_text("x" * 50_000)
    config = tmp_path / "gateway.yaml"
    config.write_text(
        render_gateway_config(
            descriptor_path=DESCRIPTOR,
            services=services_in_descriptor(DESCRIPTOR),
            manager_addr=("manager.internal", 8091),
            web_root=web,
        )
    )
    proc = envoy_validate(config)
    assert proc.returncode == 0, proc.stdout + proc.stderr


def test_envoy_rejects_unknown_service(tmp_path: Path) -> None:
    config = tmp_path / "gateway.yaml"
    config.write_text(
        render_gateway_config(descriptor_path=DESCRIPTOR, services=["bai.api.manager.v1.Nope"])
    )
    assert envoy_validate(config).returncode != 0


def test_checked_in_config_is_current() -> None:
    checked_in = (REPO / "envoy" / "gateway.yaml").read_text()
    assert checked_in == render_default_config(REPO), (
        "envoy/gateway.yaml is stale: run .venv/bin/python scripts/render_envoy.py"
    )


def test_checked_in_config_validates_from_repo_root() -> None:
    proc = envoy_validate(Path("envoy/gateway.yaml"), cwd=REPO)
    assert proc.returncode == 0, proc.stdout + proc.stderr


def test_descriptor_has_error_detail_types() -> None:
    fds = descriptor_pb2.FileDescriptorSet()
    fds.ParseFromString(DESCRIPTOR.read_bytes())
    assert "google/rpc/error_details.proto" in {f.name for f in fds.file}


def test_services_in_descriptor(tmp_path: Path) -> None:
    fds = descriptor_pb2.FileDescriptorSet()
    for package, names in (
        ("bai.api.manager.v1", ["SessionService", "AgentRegistryService", "AuthService"]),
        ("bai.api.storage.v1", ["FileService", "StorageService"]),
        ("bai.api.agent.v1", ["AgentService"]),
        ("bai.api.coordinator.v1", ["CircuitService"]),
    ):
        f = fds.file.add(name=package.replace(".", "/") + "/x.proto", package=package)
        for name in names:
            f.service.add(name=name)
    path = tmp_path / "set.binpb"
    path.write_bytes(fds.SerializeToString())
    assert services_in_descriptor(path) == [
        "bai.api.manager.v1.AuthService",
        "bai.api.manager.v1.SessionService",
        "bai.api.storage.v1.FileService",
    ]
    committed = services_in_descriptor(DESCRIPTOR)
    assert "bai.api.manager.v1.AuthService" in committed
    assert "bai.api.manager.v1.AgentRegistryService" not in committed


def test_config_shape() -> None:
    cfg = gateway_config(
        descriptor_path=DESCRIPTOR,
        services=["bai.api.manager.v1.AuthService"],
        manager_addr=("manager", 8091),
    )
    listener = cfg["static_resources"]["listeners"][0]
    assert listener["address"]["socket_address"]["port_value"] == 8090
    hcm = listener["filter_chains"][0]["filters"][0]["typed_config"]
    # Transfer tokens ride in ?token=: the access log writes paths without queries.
    log_format = hcm["access_log"][0]["typed_config"]["log_format"]
    assert (
        "%REQ_WITHOUT_QUERY(X-ENVOY-ORIGINAL-PATH?:PATH)%"
        in (log_format["text_format_source"]["inline_string"])
    )
    assert "%REQ(X-ENVOY-ORIGINAL-PATH?:PATH)%" not in json.dumps(hcm["access_log"])
    routes = hcm["route_config"]["virtual_hosts"][0]["routes"]
    assert routes[0]["match"] == {"prefix": "/bai.api.storage.v1.FileService/"}
    assert routes[0]["route"]["cluster"] == "storage"
    assert routes[-1]["route"]["cluster"] == "manager"
    assert all(r["route"]["timeout"] == "0s" for r in routes if "route" in r)
    filters = [f["name"] for f in hcm["http_filters"]]
    assert filters[-1] == "envoy.filters.http.router"
    transcoder = hcm["http_filters"][filters.index("envoy.filters.http.grpc_json_transcoder")]
    opts = transcoder["typed_config"]
    assert opts["convert_grpc_status"] is True
    assert opts["request_validation_options"]["reject_unknown_method"] is True
    assert opts["print_options"]["stream_newline_delimited"] is True
    clusters = {c["name"]: c for c in cfg["static_resources"]["clusters"]}
    assert clusters["manager"]["type"] == "STRICT_DNS"
    assert clusters["storage"]["type"] == "STATIC"
    for name, c in clusters.items():
        proto_opts = c["typed_extension_protocol_options"][
            "envoy.extensions.upstreams.http.v3.HttpProtocolOptions"
        ]
        # gRPC upstreams speak h2c; the storage proxy's HTTP transfers, HTTP/1.1.
        expected = "http_protocol_options" if name == "storage_http" else "http2_protocol_options"
        assert expected in proto_opts["explicit_http_config"]
    http_route = routes[1]
    assert http_route["match"] == {"prefix": "/storage/v1/"}
    assert http_route["route"]["cluster"] == "storage_http"
    off = http_route["typed_per_filter_config"]["envoy.filters.http.grpc_json_transcoder"]
    assert off["disabled"] is True
    with pytest.raises(ValueError):
        gateway_config(descriptor_path=DESCRIPTOR, services=[])


def test_process_argv(tmp_path: Path) -> None:
    argv = gateway_process_argv(tmp_path / "g.yaml", base_id=7)
    assert argv[0] == str(envoy_binary())
    assert argv[1:3] == ["-c", str(tmp_path / "g.yaml")]
    assert argv[-2:] == ["--base-id", "7"]
    assert "--use-dynamic-base-id" in gateway_process_argv(tmp_path / "g.yaml")


def test_yaml_quoting() -> None:
    text = dump(
        {
            "a": "0s",
            "b": "true",
            "c": "*",
            "d": "plain/path.x",
            "e": [],
            "f": {},
            "g": [[1, 2]],
            "@type": "x",
            "h": [{"k": [1]}],
        },
        header="hello",
    )
    assert text == (
        "# hello\n"
        'a: "0s"\n'
        'b: "true"\n'
        'c: "*"\n'
        "d: plain/path.x\n"
        "e: []\n"
        "f: {}\n"
        "g:\n"
        "- - 1\n"
        "  - 2\n"
        '"@type": x\n'
        "h:\n"
        "- k:\n"
        "  - 1\n"
    )
