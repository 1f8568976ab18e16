"""Configuration layers: defaults < etcd global < TOML file < environment."""

from __future__ import annotations

from pathlib import Path

import pytest

from bai.common.component import ComponentConfig, load_component_config
from bai.common.config import env_overrides, load_config
from bai.common.errors import InvalidArgument, Unavailable
from bai.common.global_config import put_global_config
from bai.manager.config import ManagerConfig


def test_env_overrides_nest_and_parse_json() -> None:
    tree = env_overrides(
        "BAI_MANAGER",
        {"BAI_MANAGER__DB__POOL_SIZE": "3", "BAI_MANAGER__LOG_LEVEL": "debug", "OTHER": "x"},
    )
    assert tree == {"db": {"pool_size": 3}, "log_level": "debug"}


def test_bad_values_are_invalid_argument(tmp_path: Path) -> None:
    with pytest.raises(InvalidArgument):
        load_config(ManagerConfig, path=None, env_prefix="X", environ={"X__GRPC_PORT": "-1"})
    broken = tmp_path / "bad.toml"
    broken.write_text("grpc_port = [")
    with pytest.raises(InvalidArgument):
        load_config(ManagerConfig, path=broken, env_prefix="X", environ={})


async def test_layers_in_order(stack, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:  # type: ignore[no-untyped-def]
    prefix = "/bai-test-layers"
    host, port = stack.etcd_host, stack.etcd_port
    await put_global_config(host, port, prefix, "manager", "log_level", "warning")
    await put_global_config(host, port, prefix, "manager", "db/pool_size", 5)
    await put_global_config(host, port, prefix, "manager", "metrics_port", 19999)
    toml = tmp_path / "manager.toml"
    toml.write_text(
        f'metrics_port = 18888\n[etcd]\nhost = "{host}"\nport = {port}\nprefix = "{prefix}"\n'
    )
    monkeypatch.setenv("BAI_MANAGER__DB__POOL_SIZE", "7")
    config = await load_component_config(ManagerConfig, "manager", toml, "BAI_MANAGER")
    assert config.log_level == "warning"  # from etcd only
    assert config.metrics_port == 18888  # the file beats etcd
    assert config.db.pool_size == 7  # the environment beats both
    assert config.grpc_port == 8091  # default


async def test_unreachable_etcd_is_unavailable(monkeypatch: pytest.MonkeyPatch) -> None:
    from bai.stack.testing import free_ports

    monkeypatch.setenv("BAI_T__ETCD__PORT", str(free_ports(1)[0]))
    with pytest.raises(Unavailable):
        await load_component_config(ComponentConfig, "t", None, "BAI_T")
