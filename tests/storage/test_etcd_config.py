"""Volumes and the token secret come from etcd (shared by every proxy), the TOML file below."""

from __future__ import annotations

from pathlib import Path

import pytest

from bai.common.component import load_component_config
from bai.common.global_config import put_global_config
from bai.stack.testing import ThrowawayStack
from bai.storage.config import StorageConfig


async def test_volumes_and_secret_from_etcd(
    stack: ThrowawayStack, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    prefix = f"/bai-storage-{tmp_path.name}"
    host, port = stack.etcd_host, stack.etcd_port
    await put_global_config(host, port, prefix, "storage", "volumes/shared/path", "/srv/shared")
    await put_global_config(host, port, prefix, "storage", "volumes/shared/backend", "vfs")
    await put_global_config(host, port, prefix, "storage", "jwt_secret", "from-etcd")
    toml = tmp_path / "storage.toml"
    toml.write_text('[volumes.local]\npath = "/srv/local"\n')
    monkeypatch.setenv("BAI_STORAGE__ETCD__HOST", host)
    monkeypatch.setenv("BAI_STORAGE__ETCD__PORT", str(port))
    monkeypatch.setenv("BAI_STORAGE__ETCD__PREFIX", prefix)
    config = await load_component_config(StorageConfig, "storage", toml, "BAI_STORAGE")
    assert {name: v.path for name, v in config.volumes.items()} == {
        "shared": "/srv/shared",
        "local": "/srv/local",
    }
    assert config.jwt_secret == "from-etcd"
