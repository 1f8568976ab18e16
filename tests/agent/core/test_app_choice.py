"""The pure parts of apps: which port of an app, its options, and how the runner
finds and fills in an app's command."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from bai.agent.kernels.apps import app_address, app_arguments
from bai.agent.runner.app_services import (
    BUILTIN_DEFS,
    ServiceFailed,
    expand,
    listen_ports,
    service_definition,
)
from bai.api.common.v1 import session_pb2
from bai.common.errors import InvalidArgument

HTTP = session_pb2.APP_PROTOCOL_HTTP


def port(name: str, container: list[int], host: list[int]) -> session_pb2.ServicePort:
    return session_pb2.ServicePort(
        name=name, protocol=HTTP, container_ports=container, host_ports=host
    )


def test_the_first_or_the_named_container_port_and_its_host_port() -> None:
    multi = port("multi", [8000, 8001], [30010, 30011])
    first = app_address(multi, 0, "10.0.0.5")
    assert (first.kernel_host, first.host_port, first.container_port) == ("10.0.0.5", 30010, 8000)
    assert app_address(multi, 8001, "h").host_port == 30011
    with pytest.raises(InvalidArgument) as wrong:
        app_address(multi, 9000, "h")
    assert wrong.value.violations[0].field == "port"


def test_arguments_are_options() -> None:
    assert app_arguments({"--b": "", "--a": "1"}) == ["--a=1", "--b"]
    with pytest.raises(InvalidArgument) as bad:
        app_arguments({"rm": "-rf"})
    assert bad.value.violations[0].field == "arguments[rm]"


def test_listen_ports_follow_bai_port_variables() -> None:
    assert listen_ports([8090, 7681], {"BAI_PORT_8090": "30001"}) == [30001, 7681]


def test_the_image_definition_wins_over_the_builtin_one(tmp_path: Path) -> None:
    assert service_definition("jupyterlab", tmp_path) is BUILTIN_DEFS["jupyterlab"]
    assert service_definition("vscode", tmp_path) is None
    mine = {"command": ["code-server", "--bind-addr", "0.0.0.0:{ports[0]}"], "env": {"A": "1"}}
    (tmp_path / "jupyterlab.json").write_text(json.dumps(mine))
    assert service_definition("jupyterlab", tmp_path) == mine
    (tmp_path / "broken.json").write_text(json.dumps({"command": "not a list"}))
    with pytest.raises(ServiceFailed):
        service_definition("broken", tmp_path)


def test_commands_are_filled_in() -> None:
    command = BUILTIN_DEFS["jupyter"]["command"]
    filled = expand(command, [30001], "/home/work")
    assert filled[:2] == ["jupyter", "notebook"]
    assert "--port=30001" in filled and "--ServerApp.root_dir=/home/work" in filled
    assert expand(["x", "{ports[1]}"], [1, 2], "/h") == ["x", "2"]
